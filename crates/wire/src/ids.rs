//! Identifiers and secrets every Switchboard crate handles the same way (protocol.md §1.3).

/// The uid emitters write as their sender: never counted as a server.
pub const EMITTER_UID: &str = "emitter";

/// A fresh 16-character lowercase hex id, the form of Node's server uids and request ids
/// (`randomBytes(8).toString("hex")`).
pub fn random_uid() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Whether two secrets (auth tokens) are equal, in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_have_nodes_form() {
        let a = random_uid();
        assert_eq!(a.len(), 16);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_ne!(a, random_uid());
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("s3cret", "s3cret"));
        assert!(!same_secret("s3cret", "s3creT"));
        assert!(!same_secret("s3cret", "s3cre"));
        assert!(!same_secret("", "x"));
        assert!(same_secret("", ""));
    }
}
