//! The server name a connection asks for, from its first bytes: the SNI of a TLS ClientHello
//! or the `Host` header of an HTTP/1 request. Nothing is decrypted.

/// What the bytes read so far say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    /// More bytes are needed.
    Incomplete,
    /// The name asked for (lower case, without port), `None` when the protocol carries none.
    Found(Option<String>),
    /// Neither TLS nor HTTP.
    Unknown,
}

/// Most bytes read before deciding.
pub const MAX_HEAD: usize = 16 * 1024;

/// The name in `buf` (a TLS record starts with 0x16, anything else is taken as HTTP).
pub fn server_name(buf: &[u8]) -> Name {
    match buf.first() {
        None => Name::Incomplete,
        Some(0x16) => tls_sni(buf),
        Some(_) => http_host(buf),
    }
}

/// A big-endian cursor over a byte slice.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| usize::from(b[0]))
    }
    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(n)
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(n)
    }
}

/// The SNI of a ClientHello, which may span several handshake records.
fn tls_sni(buf: &[u8]) -> Name {
    let mut handshake = Vec::new();
    let mut rec = Cursor(buf);
    loop {
        let Some(head) = rec.take(5) else {
            return Name::Incomplete;
        };
        if head[0] != 0x16 || head[1] != 3 {
            return Name::Unknown;
        }
        let len = usize::from(u16::from_be_bytes([head[3], head[4]]));
        let Some(body) = rec.take(len) else {
            return Name::Incomplete;
        };
        handshake.extend_from_slice(body);
        let mut h = Cursor(&handshake);
        match (h.u8(), h.u24()) {
            (Some(1), Some(n)) if h.0.len() >= n => return client_hello(&h.0[..n]),
            (Some(1), Some(_)) | (None, _) | (_, None) => {}
            _ => return Name::Unknown,
        }
    }
}

fn client_hello(body: &[u8]) -> Name {
    let parse = || -> Option<Option<String>> {
        let mut c = Cursor(body);
        c.take(2 + 32)?; // version, random
        c.vec8()?; // session id
        c.vec16()?; // cipher suites
        c.vec8()?; // compression methods
        if c.0.is_empty() {
            return Some(None);
        }
        let mut exts = Cursor(c.vec16()?);
        while !exts.0.is_empty() {
            let kind = exts.u16()?;
            let data = exts.vec16()?;
            if kind == 0 {
                return Some(sni_extension(data));
            }
        }
        Some(None)
    };
    parse().map_or(Name::Unknown, Name::Found)
}

/// The first `host_name` entry of a `server_name` extension.
fn sni_extension(data: &[u8]) -> Option<String> {
    let mut c = Cursor(data);
    let mut list = Cursor(c.vec16()?);
    while !list.0.is_empty() {
        let kind = list.u8()?;
        let name = list.vec16()?;
        if kind == 0 {
            return std::str::from_utf8(name)
                .ok()
                .map(super::pattern::normalise);
        }
    }
    None
}

/// The `Host` of an HTTP/1 request head.
fn http_host(buf: &[u8]) -> Name {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() >= MAX_HEAD {
            Name::Unknown
        } else {
            Name::Incomplete
        };
    };
    let Ok(head) = std::str::from_utf8(&buf[..end]) else {
        return Name::Unknown;
    };
    let mut lines = head.split("\r\n");
    let request = lines.next().unwrap_or_default();
    if request.split(' ').count() != 3 || !request.contains("HTTP/1.") {
        return Name::Unknown;
    }
    let hosts: Vec<&str> = lines
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.trim())
        .collect();
    // Two Host headers are ambiguous: no name.
    let [host] = hosts.as_slice() else {
        return Name::Found(None);
    };
    Name::Found(Some(super::pattern::normalise(strip_port(host))))
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host;
    }
    host.rsplit_once(':')
        .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ClientHello record with `sni` (none when empty).
    pub fn client_hello(sni: &str) -> Vec<u8> {
        let mut ext = Vec::new();
        if !sni.is_empty() {
            let n = sni.len();
            let mut list = vec![0u8];
            list.extend((n as u16).to_be_bytes());
            list.extend(sni.as_bytes());
            let mut data = (list.len() as u16).to_be_bytes().to_vec();
            data.extend(list);
            ext.extend([0xff, 0x01, 0, 1, 0]); // renegotiation_info first
            ext.extend([0, 0]);
            ext.extend((data.len() as u16).to_be_bytes());
            ext.extend(data);
        }
        let mut body = vec![3, 3];
        body.extend([7u8; 32]);
        body.extend([0, 0, 2, 0x13, 0x01, 1, 0]);
        body.extend((ext.len() as u16).to_be_bytes());
        body.extend(ext);
        let mut hs = vec![1];
        hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend(body);
        let mut rec = vec![0x16, 3, 1];
        rec.extend((hs.len() as u16).to_be_bytes());
        rec.extend(hs);
        rec
    }

    #[test]
    fn sni_of_a_client_hello() {
        let hello = client_hello("Allowed.Test");
        assert_eq!(
            server_name(&hello),
            Name::Found(Some("allowed.test".into()))
        );
        for cut in [1, 5, 20, hello.len() - 1] {
            assert_eq!(server_name(&hello[..cut]), Name::Incomplete, "{cut}");
        }
        assert_eq!(server_name(&client_hello("")), Name::Found(None));
        let mut garbage = hello.clone();
        garbage[5] = 2; // a ServerHello
        assert_eq!(server_name(&garbage), Name::Unknown);
    }

    #[test]
    fn sni_across_two_records() {
        let hello = client_hello("split.test");
        let body = &hello[5..];
        let (a, b) = body.split_at(10);
        let mut two = Vec::new();
        for part in [a, b] {
            two.extend([0x16, 3, 1]);
            two.extend((part.len() as u16).to_be_bytes());
            two.extend(part);
        }
        assert_eq!(server_name(&two), Name::Found(Some("split.test".into())));
    }

    #[test]
    fn host_of_an_http_request() {
        let req = b"GET / HTTP/1.1\r\nUser-Agent: x\r\nHOST: Allowed.test:80\r\n\r\n";
        assert_eq!(server_name(req), Name::Found(Some("allowed.test".into())));
        assert_eq!(server_name(&req[..20]), Name::Incomplete);
        let two = b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n";
        assert_eq!(server_name(two), Name::Found(None));
        let none = b"GET / HTTP/1.0\r\n\r\n";
        assert_eq!(server_name(none), Name::Found(None));
        assert_eq!(server_name(b"SSH-2.0-x\r\n\r\n"), Name::Unknown);
    }
}
