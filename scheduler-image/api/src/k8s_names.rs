//! Kubernetes' own rules for names: DNS-1123 labels (task, pool, preset and volume names, which
//! end up in Job names and label values), DNS-1123 subdomains (object names), label and
//! annotation keys, and label values. Each check returns the message a user needs to fix the
//! name.

/// Checks a DNS-1123 label: lower-case alphanumerics and '-', starting and ending with an
/// alphanumeric, at most 63 characters. These names end up in Job names and label values.
pub fn check_dns1123_label(name: &str) -> Result<(), String> {
    let valid_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let alnum = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if name.is_empty() {
        Err("must not be empty".into())
    } else if name.len() > 63 {
        Err(format!(
            "{name:?} is {} characters long; at most 63 are allowed",
            name.len()
        ))
    } else if !valid_chars || !alnum(name.as_bytes().first()) || !alnum(name.as_bytes().last()) {
        Err(format!(
            "{name:?} is not a valid DNS-1123 label: use lower-case letters, digits and '-', \
             starting and ending with a letter or digit"
        ))
    } else {
        Ok(())
    }
}

/// A DNS-1123 subdomain (object names: ConfigMaps, Secrets, claims, accounts).
pub fn check_dns1123_subdomain(name: &str) -> Result<(), String> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() {
        Err("must not be empty".into())
    } else if name.len() > 253 || !name.split('.').all(label_ok) {
        Err(format!(
            "{name:?} is not a valid object name: lower-case letters, digits, '-' and '.', \
             starting and ending with a letter or digit, at most 253 characters"
        ))
    } else {
        Ok(())
    }
}

/// A label or annotation key: an optional DNS subdomain prefix and `/`, then a name of at most
/// 63 characters (letters, digits, `-`, `_`, `.`, starting and ending with a letter or digit).
pub fn check_qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    let prefix_ok = prefix.is_none_or(|p| check_dns1123_subdomain(p).is_ok());
    if name_ok && prefix_ok {
        Ok(())
    } else {
        Err(format!(
            "{key:?} is not a valid key: an optional DNS subdomain and '/', then at most 63 \
             letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ))
    }
}

/// A label value: empty, or at most 63 letters, digits, `-`, `_`, `.`, starting and ending with
/// a letter or digit.
pub fn check_label_value(value: &str) -> Result<(), String> {
    let ok = value.is_empty()
        || (value.len() <= 63
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && value.as_bytes()[0].is_ascii_alphanumeric()
            && value.as_bytes()[value.len() - 1].is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "value {value:?} is not a valid label value: at most 63 letters, digits, '-', '_' \
             or '.', starting and ending with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        assert!(check_dns1123_label("etl-2").is_ok());
        assert!(check_dns1123_label("-etl").is_err());
        assert!(check_dns1123_label("etl.x").is_err());
        assert!(
            check_dns1123_label(&"a".repeat(64))
                .unwrap_err()
                .contains("64 characters")
        );
    }
}
