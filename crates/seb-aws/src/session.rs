//! The per-execution STS session: its inline session policy, tags, source identity and name
//! (spec section 9). Pure; the `AssumeRole` call is in `crate::target`.

use serde_json::{Value, json};

use crate::AwsError;

/// Session tag carrying the certificate id.
pub const TAG_CID: &str = "seb:cid";
/// Session tag carrying the certificate nonce.
pub const TAG_NONCE: &str = "seb:nonce";
/// Session tag carrying the risk level (`L0`..`L5`).
pub const TAG_RISK: &str = "seb:risk";

/// The inline session policy: one statement allowing exactly `action` on exactly
/// `resource`. The effective permissions of the session are the intersection of this and the
/// execution role's own policies, so the session can do nothing else whatever the role allows.
/// `resource` must be free of IAM wildcards (checked when the target is parsed).
pub fn session_policy(action: &str, resource: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "SebCertifiedOperation",
            "Effect": "Allow",
            "Action": action,
            "Resource": resource,
        }]
    })
}

fn tag_value_ok(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 256
        && v.chars().all(|c| c.is_ascii_alphanumeric() || " _.:/=+-@".contains(c))
}

/// The session tags `seb:cid`, `seb:nonce`, `seb:risk`.
pub fn session_tags(
    cid: &str,
    nonce: &str,
    risk_level: u8,
) -> Result<Vec<(&'static str, String)>, AwsError> {
    for (k, v) in [(TAG_CID, cid), (TAG_NONCE, nonce)] {
        if !tag_value_ok(v) {
            return Err(AwsError::Invalid(format!("`{v}` cannot be the `{k}` session tag value")));
        }
    }
    Ok(vec![
        (TAG_CID, cid.to_owned()),
        (TAG_NONCE, nonce.to_owned()),
        (TAG_RISK, format!("L{risk_level}")),
    ])
}

fn sts_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

/// `SourceIdentity` = the agent. STS allows 2..64 characters of `[\w+=,.@-]`, not starting
/// with `aws:`; an agent name outside that is refused rather than rewritten, so the audit
/// trail never shows a different name.
pub fn source_identity(agent: &str) -> Result<String, AwsError> {
    if agent.len() < 2
        || agent.len() > 64
        || !agent.chars().all(sts_name_char)
        || agent.starts_with("aws:")
    {
        return Err(AwsError::Invalid(format!(
            "agent `{agent}` cannot be an STS SourceIdentity (2..64 characters of [A-Za-z0-9_+=,.@-])"
        )));
    }
    Ok(agent.to_owned())
}

/// `RoleSessionName` = `seb-` + the cid (its allowed characters, at most 60).
pub fn session_name(cid: &str) -> String {
    let prefix: String = cid.chars().filter(|c| sts_name_char(*c)).take(60).collect();
    if prefix.is_empty() { "seb-unnamed".into() } else { format!("seb-{prefix}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::PROFILES;

    #[test]
    fn session_policy_is_exact() {
        for p in PROFILES {
            let arn = format!("arn:aws:{}:us-east-1:123456789012:x/y", p.service);
            let pol = session_policy(p.action, &arn);
            assert_eq!(pol["Version"], "2012-10-17");
            let stmts = pol["Statement"].as_array().unwrap();
            assert_eq!(stmts.len(), 1, "exactly one statement");
            let s = stmts[0].as_object().unwrap();
            let mut keys: Vec<&str> = s.keys().map(String::as_str).collect();
            keys.sort_unstable();
            assert_eq!(
                keys,
                ["Action", "Effect", "Resource", "Sid"],
                "no Condition, NotAction, NotResource"
            );
            assert_eq!(s["Effect"], "Allow");
            // One action, as a string (not a list), exactly the profile's, no wildcard.
            assert_eq!(s["Action"], Value::String(p.action.into()));
            assert!(!p.action.contains('*') && !p.action.contains('?'));
            // One resource, exactly the certified ARN.
            assert_eq!(s["Resource"], Value::String(arn.clone()));
            assert_eq!(pol.as_object().unwrap().len(), 2);
        }
        // The packed size stays far below STS's 2048-character plaintext limit.
        let long = format!("arn:aws:s3:::bucket-a/{}", "k".repeat(1024));
        assert!(session_policy("s3:PutObject", &long).to_string().len() < 2048);
    }

    #[test]
    fn tags_identity_and_name() {
        let tags = session_tags("0195-abc", "bm9uY2Utbm9uY2UtMTIzNA", 3).unwrap();
        assert_eq!(
            tags,
            vec![
                (TAG_CID, "0195-abc".to_owned()),
                (TAG_NONCE, "bm9uY2Utbm9uY2UtMTIzNA".to_owned()),
                (TAG_RISK, "L3".to_owned())
            ]
        );
        assert!(session_tags("cid", "bad\nnonce", 1).is_err());
        assert!(session_tags("", "n", 1).is_err());
        assert_eq!(source_identity("agent-7").unwrap(), "agent-7");
        assert!(source_identity("a").is_err());
        assert!(source_identity("aws:me").is_err());
        assert!(source_identity("has space").is_err());
        assert_eq!(
            session_name("3f2a8c1e-0000-4000-8000-000000000001"),
            "seb-3f2a8c1e-0000-4000-8000-000000000001"
        );
        assert!(session_name(&"x".repeat(100)).len() <= 64);
        assert_eq!(session_name("!!"), "seb-unnamed");
    }
}
