//! SSM parameters: GetParameter (the value projected as its digest only); PutParameter with
//! `Overwrite=false` when the parameter was absent (atomic), or `Overwrite=true` and a version
//! check after the write when present.

use aws_config::SdkConfig;
use aws_sdk_ssm::operation::RequestId;
use aws_sdk_ssm::types::ParameterType;
use serde_json::{Value, json};

use seb_target::{MutationStatus, TargetError};

use super::{Called, Live, failure};
use crate::arn::Resource;
use crate::profiles::value_digest;

pub(crate) async fn observe(sdk: &SdkConfig, res: &Resource) -> Result<Live, TargetError> {
    let Resource::SsmParameter { name } = res else {
        return Err(TargetError::invalid("not an SSM parameter"));
    };
    match aws_sdk_ssm::Client::new(sdk)
        .get_parameter()
        .name(name)
        .with_decryption(false)
        .send()
        .await
    {
        Ok(out) => {
            let Some(p) = out.parameter() else { return Ok(Live::absent()) };
            // The value is projected as its digest only: for a SecureString it is the
            // ciphertext (moto embeds the plaintext), and the live model ends up in evidence,
            // certificates, records and the store.
            let obj = json!({
                "value_digest": p.value().map(value_digest),
                "type": p.r#type().map(|t| t.as_str()),
                "version": p.version(),
            });
            Ok(Live { object: obj, version: Some(p.version().to_string()) })
        }
        Err(e) => {
            let f = failure(e);
            if f.code.as_deref() == Some("ParameterNotFound") {
                return Ok(Live::absent());
            }
            Err(f.into_read_error("ssm:GetParameter"))
        }
    }
}

pub(crate) async fn mutate(
    sdk: &SdkConfig,
    res: &Resource,
    params: &Value,
    observed_version: Option<&str>,
) -> Result<Called, TargetError> {
    let Resource::SsmParameter { name } = res else {
        return Err(TargetError::invalid("not an SSM parameter"));
    };
    let observed: Option<i64> = match observed_version {
        None => None,
        Some(v) => Some(
            v.parse().map_err(|_| TargetError::invalid(format!("`{v}` is not an SSM version")))?,
        ),
    };
    let value = params.get("value").and_then(Value::as_str).unwrap_or_default();
    let ty = params.get("type").and_then(Value::as_str).unwrap_or("String");
    let mut req = aws_sdk_ssm::Client::new(sdk)
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(ParameterType::from(ty))
        .overwrite(observed.is_some());
    if let Some(d) = params.get("description").and_then(Value::as_str) {
        req = req.description(d);
    }
    match req.send().await {
        Ok(out) => {
            let got = out.version();
            // SSM has no compare-and-swap for an existing parameter: check afterwards that
            // no other write came between the drift check and ours.
            let error = match observed {
                Some(v) if got != v + 1 => Some(format!(
                    "ssm version check: observed version {v}, ours became {got}: another write interleaved (last writer wins)"
                )),
                _ => None,
            };
            Ok(Called {
                status: MutationStatus::Applied,
                request_id: out.request_id().map(str::to_owned),
                result: Some(json!({"version": got})),
                error,
            })
        }
        Err(e) => {
            let f = failure(e);
            let conflict = f.code.as_deref() == Some("ParameterAlreadyExists");
            f.into_called("ssm:PutParameter", conflict)
        }
    }
}
