//! Object names: the chart's `datajump.name` and `datajump.fullname` helpers, in Rust, so the
//! plugin computes exactly the names the chart renders (a test renders both and compares).

/// The chart's name; `app.kubernetes.io/name` unless `nameOverride` is set.
pub const CHART_NAME: &str = "datajump";

/// Longest fullname, leaving room for `-<component>` within the 63 characters of a DNS label.
pub const FULLNAME_MAX: usize = 50;

/// `app.kubernetes.io/name`: `nameOverride`, else the chart name.
pub fn name(name_override: &str) -> String {
    let name = if name_override.is_empty() {
        CHART_NAME
    } else {
        name_override
    };
    helm_trunc(name, 63)
}

/// The prefix of every object name, as the chart's `datajump.fullname` computes it:
/// `fullnameOverride`; else the release name when it contains the name; else
/// `<release>-<name>`; cut to [`FULLNAME_MAX`] and without a trailing `-`.
pub fn fullname(release: &str, name_override: &str, fullname_override: &str) -> String {
    if !fullname_override.is_empty() {
        return helm_trunc(fullname_override, FULLNAME_MAX);
    }
    let name = name(name_override);
    if release.contains(name.as_str()) {
        helm_trunc(release, FULLNAME_MAX)
    } else {
        helm_trunc(&format!("{release}-{name}"), FULLNAME_MAX)
    }
}

/// Sprig's `trunc n | trimSuffix "-"` (one dash removed, as Go's strings.TrimSuffix does).
fn helm_trunc(s: &str, max: usize) -> String {
    let cut = s.get(..max).unwrap_or(s);
    cut.strip_suffix('-').unwrap_or(cut).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fullname_follows_the_chart_rule() {
        assert_eq!(fullname("datajump", "", ""), "datajump");
        assert_eq!(fullname("datajump-blue", "", ""), "datajump-blue");
        assert_eq!(fullname("blue", "", ""), "blue-datajump");
        assert_eq!(fullname("blue", "dj", ""), "blue-dj");
        assert_eq!(fullname("blue-dj", "dj", ""), "blue-dj");
        assert_eq!(fullname("blue", "dj", "platform"), "platform");
    }

    #[test]
    fn long_names_are_cut_to_fifty_without_a_trailing_dash() {
        let release = "a".repeat(49) + "-tail";
        let full = fullname(&release, "", "");
        assert_eq!(full, "a".repeat(49));
        assert_eq!(fullname(&"b".repeat(60), "", "").len(), FULLNAME_MAX);
        assert_eq!(fullname("x", "", &"c".repeat(70)).len(), FULLNAME_MAX);
    }
}
