// The official TypeScript SDK (@daytonaio/sdk, pinned in package.json) against `cove up`,
// configured only with DAYTONA_API_URL / DAYTONA_API_KEY as a user would. Each step asserts what
// the SDK returned; the first failure exits non-zero with its message (tests/sdk/test_typescript.py
// runs this file and reports it). Steps print `ok <name>` as they pass.
import assert from 'node:assert/strict'
import { Daytona } from '@daytonaio/sdk'

const daytona = new Daytona({ apiUrl: process.env.DAYTONA_API_URL, apiKey: process.env.DAYTONA_API_KEY })
const run = process.env.COVE_TS_RUN || Math.random().toString(16).slice(2, 10)
const made = []

async function step(name, f) {
  await f()
  console.log(`ok ${name}`)
}

async function collect(query) {
  const names = []
  for await (const sb of daytona.list(query)) names.push(sb.name)
  return names
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

try {
  let sb
  await step('create', async () => {
    sb = await daytona.create({ name: `ts-${run}-0`, labels: { 'cove-ts-run': run } })
    made.push(sb)
    assert.equal(sb.state, 'started')
    assert.match(sb.id, /^[0-9a-f-]{36}$/)
  })

  await step('executeCommand and codeRun (python -c, node -e)', async () => {
    let r = await sb.process.executeCommand('python -c "print(6 * 7)"')
    assert.deepEqual([r.exitCode, r.result.trim()], [0, '42'])
    r = await sb.process.executeCommand(`node -e "console.log([1, 2].map(x => x * 3).join('-'))"`)
    assert.deepEqual([r.exitCode, r.result.trim()], [0, '3-6'])
    r = await sb.process.codeRun('import math\nprint(math.comb(10, 3))')
    assert.deepEqual([r.exitCode, r.result.trim()], [0, '120'])
  })

  await step('typescript codeRun in a typescript sandbox', async () => {
    const ts = await daytona.create({ language: 'typescript', labels: { 'cove-ts-run': run }, name: `ts-${run}-1` })
    made.push(ts)
    const r = await ts.process.codeRun('const f = (n: number): number => n * 2; console.log(f(21))')
    assert.deepEqual([r.exitCode, r.result.trim()], [0, '42'])
  })

  await step('files round trip', async () => {
    const body = Buffer.from(`hello from typescript ${run}\n`)
    await sb.fs.uploadFile(body, '/home/daytona/ts.txt')
    const back = await sb.fs.downloadFile('/home/daytona/ts.txt')
    assert.equal(Buffer.from(back).toString(), body.toString())
  })

  await step('code interpreter: state, isolation, errors', async () => {
    const ci = sb.codeInterpreter
    let r = await ci.runCode(`kept = "${run}"`)
    assert.equal(r.error, undefined)
    r = await ci.runCode('print(kept.upper())')
    assert.equal(r.stdout, `${run.toUpperCase()}\n`)
    const ctx = await ci.createContext()
    r = await ci.runCode('print(kept)', { context: ctx })
    assert.equal(r.error?.name, 'NameError')
    r = await ci.runCode('1 / 0')
    assert.equal(r.error?.name, 'ZeroDivisionError')
    assert.ok((await ci.listContexts()).some((c) => c.id === ctx.id))
    await ci.deleteContext(ctx)
    assert.ok(!(await ci.listContexts()).some((c) => c.id === ctx.id))
  })

  await step('pty: input, output, resize, exit code', async () => {
    let out = ''
    const decoder = new TextDecoder()
    const pty = await sb.process.createPty({
      id: `ts-pty-${run}`, cols: 90, rows: 20, envs: { COVE_TS: 'pty-env' },
      onData: (d) => { out += decoder.decode(d) },
    })
    const until = async (needle) => {
      const deadline = Date.now() + 20000
      while (!out.includes(needle)) {
        assert.ok(Date.now() < deadline, `no ${needle} in ${out.slice(-300)}`)
        await sleep(50)
      }
    }
    await pty.sendInput('echo ts-$((40+2)) $COVE_TS\n')
    await until('ts-42 pty-env')
    await pty.sendInput('stty size\n')
    await until('20 90')
    await pty.resize(120, 33)
    await pty.sendInput('stty size\n')
    await until('33 120')
    await pty.sendInput('exit 5\n')
    const result = await pty.wait()
    assert.equal(result.exitCode, 5)
    await pty.disconnect()
  })

  await step('metrics', async () => {
    const m = await sb.getMetricsLatest()
    assert.ok(m.cpuCount >= 1, JSON.stringify(m))
    assert.ok(m.memTotal > 0 && m.memUsed > 0 && m.memUsed <= m.memTotal, JSON.stringify(m))
    assert.ok(m.diskTotal > 0 && m.diskUsed <= m.diskTotal, JSON.stringify(m))
  })

  await step('signed URLs', async () => {
    await sb.fs.uploadFile(Buffer.from('signed-ts\n'), '/home/daytona/signed-ts.txt')
    const url = await sb.downloadUrl('/home/daytona/signed-ts.txt')
    let r = await fetch(url)
    assert.equal(r.status, 200)
    assert.equal(await r.text(), 'signed-ts\n')
    r = await fetch(url, { method: 'POST' })
    assert.equal(r.status, 401)
    await sb.rotateSigningKey()
    r = await fetch(url)
    assert.equal(r.status, 401)
  })

  await step('list filters and sort', async () => {
    const labels = { 'cove-ts-run': run }
    assert.deepEqual((await collect({ labels })).sort(), [`ts-${run}-0`, `ts-${run}-1`])
    assert.deepEqual(await collect({ labels, sort: 'name', order: 'asc', limit: 1 }), [`ts-${run}-0`, `ts-${run}-1`])
    assert.deepEqual(await collect({ labels, sort: 'name', order: 'desc', limit: 1 }), [`ts-${run}-1`, `ts-${run}-0`])
    assert.deepEqual(await collect({ labels, name: `ts-${run}-1` }), [`ts-${run}-1`])
    assert.deepEqual(await collect({ labels, states: ['stopped'] }), [])
    assert.deepEqual(await collect({ labels, minCpu: 2 }), [])
    const created = new Date(made[1].createdAt)
    assert.deepEqual(await collect({ labels, createdAtAfter: created }), [`ts-${run}-1`])
  })

  await step('stop, start, delete', async () => {
    await sb.stop()
    assert.equal(sb.state, 'stopped')
    await sb.start()
    assert.equal(sb.state, 'started')
  })
} finally {
  for (const s of made) {
    try { await s.delete() } catch (e) { console.error(`cleanup of ${s.id}: ${e}`) }
  }
}
console.log('all steps passed')
