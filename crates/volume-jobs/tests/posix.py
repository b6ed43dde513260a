# The POSIX suite run inside a sandbox on a mounted volume: python3 posix.py DIR write|read [SHA]
# Prints one JSON line: {"ok": bool, "failures": [...], "sha": "<sha256 of rand.bin>"}.
import fcntl, hashlib, json, os, sqlite3, subprocess, sys, time

root, phase = sys.argv[1], sys.argv[2]
failures = []


def check(name, cond):
    if not cond:
        failures.append(name)


def p(*parts):
    return os.path.join(root, *parts)


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


DEEP = p("deep", *"abcdefghijklmnop")


def write():
    os.makedirs(DEEP, exist_ok=True)
    with open(os.path.join(DEEP, "leaf.txt"), "w") as f:
        f.write("leaf")
    with open(p("rand.bin"), "wb") as f:
        f.write(os.urandom(1024 * 1024))
    with open(p("r1.txt"), "w") as f:
        f.write("renamed")
    os.rename(p("r1.txt"), p("r2.txt"))
    check("rename-old-gone", not os.path.exists(p("r1.txt")))
    with open(p("app.txt"), "w") as f:
        f.write("a\n")
    with open(p("app.txt"), "a") as f:
        f.write("b\n")
    with open(p("rand-offset.bin"), "wb") as f:
        f.write(b"\0" * 65536)
    with open(p("rand-offset.bin"), "r+b") as f:
        f.seek(40000)
        f.write(b"XYZ")
    with open(p("trunc.txt"), "w") as f:
        f.write("0123456789abcdefghij")
    # ftruncate on an open file (a path truncate within ~2 s of a write is EIO with rclone 1.60,
    # see the README)
    with open(p("trunc.txt"), "r+") as f:
        f.truncate(10)
    db = sqlite3.connect(p("db.sqlite"))
    db.execute("CREATE TABLE t (i INTEGER PRIMARY KEY, v TEXT)")
    for batch in range(10):
        with db:
            db.executemany("INSERT INTO t (i, v) VALUES (?, ?)",
                           [(batch * 100 + j, "v%d" % (batch * 100 + j)) for j in range(100)])
    db.close()
    flock()


def flock():
    lock = p("lockfile")
    holder = subprocess.Popen([sys.executable, "-c",
        "import fcntl,sys,time;f=open(sys.argv[1],'a');fcntl.flock(f,fcntl.LOCK_EX);"
        "print('held',flush=True);time.sleep(2)", lock], stdout=subprocess.PIPE, text=True)
    check("flock-holder-started", holder.stdout.readline().strip() == "held")
    f = open(lock, "a")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        failures.append("flock-not-exclusive")
    except BlockingIOError:
        pass
    holder.wait()
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again once the holder is gone
    f.close()


def read():
    with open(os.path.join(DEEP, "leaf.txt")) as f:
        check("deep-tree", f.read() == "leaf")
    with open(p("r2.txt")) as f:
        check("rename", f.read() == "renamed")
    with open(p("app.txt")) as f:
        check("append", f.read() == "a\nb\n")
    with open(p("rand-offset.bin"), "rb") as f:
        data = f.read()
        check("random-offset", len(data) == 65536 and data[40000:40003] == b"XYZ"
              and data[:40000] == b"\0" * 40000)
    check("truncate", open(p("trunc.txt")).read() == "0123456789")
    db = sqlite3.connect(p("db.sqlite"))
    check("sqlite-count", db.execute("SELECT COUNT(*), SUM(i) FROM t").fetchone() == (1000, 499500))
    check("sqlite-integrity", db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")
    db.close()
    if len(sys.argv) > 3:
        check("bytes", sha(p("rand.bin")) == sys.argv[3])


write() if phase == "write" else read()
print(json.dumps({"ok": not failures, "failures": failures, "sha": sha(p("rand.bin"))}))
