//! The session ids clients see: socketioxide's own 16-character sid followed by the owner's
//! address and a MAC over both, so that any server knows a session's owner from the sid alone
//! (no directory, no race with the first request) and no client can make a server forward to an
//! address of its choosing.
//!
//! `<sid (16)><base64url(owner ip ‖ port ‖ tag)>`: 40 characters for an IPv4 owner, 56 for IPv6,
//! in Engine.IO's own alphabet (`[A-Za-z0-9_-]`). The tag is the first 96 bits of
//! SipHash-2-4-128 of `sid ‖ ip ‖ port` keyed with the first 128 bits of SHA-256(secret):
//! SipHash is a keyed PRF made for short inputs, and every request of a session is checked, so
//! the MAC must cost little (HMAC-SHA256 cost about 8,000 instructions per request here).

use std::{
    hash::Hasher,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use siphasher::sip128::{Hasher128, SipHasher24};

/// socketioxide's sids: 16 characters.
pub(crate) const INNER_LEN: usize = 16;
/// Bytes of the MAC kept (96 bits).
const TAG: usize = 12;
const V4: usize = 4 + 2;
const V6: usize = 16 + 2;

/// Seals and opens sids with the cluster's shared secret.
#[derive(Clone)]
pub(crate) struct SidCodec {
    key: [u8; 16],
}

impl SidCodec {
    pub(crate) fn new(secret: &[u8]) -> Self {
        let digest = Sha256::digest(secret);
        let mut key = [0; 16];
        key.copy_from_slice(&digest[..16]);
        SidCodec { key }
    }

    fn tag(&self, sid: &[u8], addr: &[u8]) -> [u8; TAG] {
        let mut h = SipHasher24::new_with_key(&self.key);
        h.write(sid);
        h.write(addr);
        let full = h.finish128().as_bytes();
        let mut tag = [0; TAG];
        tag.copy_from_slice(&full[..TAG]);
        tag
    }

    /// The sid clients get for socketioxide's `sid`, owned by `owner`.
    pub(crate) fn seal(&self, sid: &str, owner: SocketAddr) -> String {
        let mut raw = Vec::with_capacity(V6 + TAG);
        match owner.ip() {
            IpAddr::V4(ip) => raw.extend_from_slice(&ip.octets()),
            IpAddr::V6(ip) => raw.extend_from_slice(&ip.octets()),
        }
        raw.extend_from_slice(&owner.port().to_be_bytes());
        let tag = self.tag(sid.as_bytes(), &raw);
        raw.extend_from_slice(&tag);
        let mut out = String::with_capacity(sid.len() + 40);
        out.push_str(sid);
        URL_SAFE_NO_PAD.encode_string(&raw, &mut out);
        out
    }

    /// socketioxide's sid and the owner, when `sealed` was made by [`seal`](Self::seal) with
    /// this secret; `None` for anything else (forged, truncated, another cluster's, a plain sid).
    pub(crate) fn open<'a>(&self, sealed: &'a str) -> Option<(&'a str, SocketAddr)> {
        // 24 or 40 base64 characters after the sid
        if !matches!(sealed.len(), 40 | 56) || !sealed.is_ascii() {
            return None;
        }
        let (sid, rest) = sealed.split_at(INNER_LEN);
        let mut raw = [0u8; V6 + TAG];
        let n = URL_SAFE_NO_PAD.decode_slice(rest, &mut raw).ok()?;
        let (addr, tag) = raw[..n].split_at(n.checked_sub(TAG)?);
        if !same(&self.tag(sid.as_bytes(), addr), tag) {
            return None;
        }
        let (ip, port) = addr.split_at(addr.len().checked_sub(2)?);
        let ip = match ip.len() {
            4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(ip).ok()?)),
            16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(ip).ok()?)),
            _ => return None,
        };
        let port = u16::from_be_bytes([port[0], port[1]]);
        debug_assert!(addr.len() == V4 || addr.len() == V6);
        Some((sid, SocketAddr::new(ip, port)))
    }
}

/// Constant-time equality of two tags.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The polling handshake response `body` (an Engine.IO open packet: `0{"sid":"…",…}`, or with
/// v3's length prefix `97:0{…}`) with its sid replaced by `seal(sid)`; `None` when the body is
/// not an open packet.
pub(crate) fn rewrite_open(body: &[u8], seal: impl FnOnce(&str) -> String) -> Option<Vec<u8>> {
    const KEY: &[u8] = b"\"sid\":\"";
    let (prefix_len, v3_len) = match body.iter().position(|&b| b == b':') {
        // v3: `<chars>:<packet>`, the prefix counts the packet's characters
        Some(colon) if colon > 0 && body[..colon].iter().all(u8::is_ascii_digit) => {
            let n: usize = std::str::from_utf8(&body[..colon]).ok()?.parse().ok()?;
            (colon + 1, Some(n))
        }
        _ => (0, None),
    };
    if body.get(prefix_len) != Some(&b'0') {
        return None;
    }
    let start = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let len = body[start..].iter().position(|&b| b == b'"')?;
    let sid = std::str::from_utf8(&body[start..start + len]).ok()?;
    if sid.len() != INNER_LEN {
        return None;
    }
    let sealed = seal(sid);
    let mut out = Vec::with_capacity(body.len() + sealed.len());
    if let Some(n) = v3_len {
        out.extend_from_slice((n + sealed.len() - sid.len()).to_string().as_bytes());
        out.push(b':');
    }
    out.extend_from_slice(&body[prefix_len..start]);
    out.extend_from_slice(sealed.as_bytes());
    out.extend_from_slice(&body[start + len..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "AbCdEfGhIjKl-_01";

    #[test]
    fn sealed_sids_open_to_their_owner() {
        let codec = SidCodec::new(b"a secret of the cluster");
        for owner in ["10.0.0.7:3000", "[fd00::1:2]:443", "127.0.0.1:65535"] {
            let owner: SocketAddr = owner.parse().unwrap_or_else(|e| panic!("{e}"));
            let sealed = codec.seal(SID, owner);
            assert!(
                sealed
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                "{sealed}"
            );
            assert_eq!(sealed.len(), if owner.is_ipv4() { 40 } else { 56 });
            assert_eq!(codec.open(&sealed), Some((SID, owner)));
        }
    }

    #[test]
    fn forged_sids_do_not_open() {
        let codec = SidCodec::new(b"a secret of the cluster");
        let owner: SocketAddr = "10.0.0.7:3000".parse().unwrap_or_else(|e| panic!("{e}"));
        let sealed = codec.seal(SID, owner);
        // another secret, a plain sid, truncated, not base64, empty
        assert_eq!(
            SidCodec::new(b"another cluster's secret").open(&sealed),
            None
        );
        for bad in [SID, &sealed[..39], "", "é"] {
            assert_eq!(codec.open(bad), None, "{bad:?}");
        }
        let mut not_b64 = sealed.clone();
        not_b64.replace_range(20..21, "*");
        assert_eq!(codec.open(&not_b64), None);
        // any character changed: the sid, the address or the tag
        for i in 0..sealed.len() {
            let mut b = sealed.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(b).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(codec.open(&changed), None, "character {i} changed");
        }
        // another address under the tag of the first
        let other = codec.seal(
            SID,
            "10.0.0.8:3000".parse().unwrap_or_else(|e| panic!("{e}")),
        );
        let spliced = format!("{}{}", &other[..24], &sealed[24..]);
        assert_eq!(codec.open(&spliced), None);
    }

    #[test]
    fn open_packets_are_rewritten() {
        let seal = |s: &str| format!("{s}XYZ");
        let v4 = br#"0{"sid":"AbCdEfGhIjKl-_01","upgrades":["websocket"],"pingInterval":25000}"#;
        let out = rewrite_open(v4, seal).unwrap_or_default();
        assert_eq!(
            out,
            br#"0{"sid":"AbCdEfGhIjKl-_01XYZ","upgrades":["websocket"],"pingInterval":25000}"#
        );
        let packet = r#"0{"sid":"AbCdEfGhIjKl-_01","upgrades":[]}"#;
        let v3 = format!("{}:{packet}", packet.len());
        let out = rewrite_open(v3.as_bytes(), seal).unwrap_or_default();
        let packet = r#"0{"sid":"AbCdEfGhIjKl-_01XYZ","upgrades":[]}"#;
        assert_eq!(out, format!("{}:{packet}", packet.len()).into_bytes());
        // not an open packet, or not a socketioxide sid
        assert_eq!(rewrite_open(b"4hello", seal), None);
        assert_eq!(rewrite_open(br#"0{"sid":"short"}"#, seal), None);
        assert_eq!(rewrite_open(b"", seal), None);
        assert_eq!(rewrite_open(b"12:", seal), None);
    }
}
