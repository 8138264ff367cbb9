//! JSON pointers (RFC 6901) for field paths in reports: `/spec/template/spec/containers/0/image`.

/// Appends one reference token to a pointer, escaping `~` and `/` as RFC 6901 requires
/// (label keys such as `app.kubernetes.io/name` contain a slash).
pub(crate) fn push(pointer: &str, token: &str) -> String {
    let mut out = String::with_capacity(pointer.len() + token.len() + 1);
    out.push_str(pointer);
    out.push('/');
    for c in token.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
    out
}

/// Appends an array index to a pointer.
pub(crate) fn push_index(pointer: &str, index: usize) -> String {
    format!("{pointer}/{index}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_slash_and_tilde() {
        assert_eq!(
            push("/metadata/labels", "app.kubernetes.io/name"),
            "/metadata/labels/app.kubernetes.io~1name"
        );
        assert_eq!(push("", "a~b"), "/a~0b");
        assert_eq!(push_index("/spec/containers", 2), "/spec/containers/2");
    }
}
