//! S3: objects (HeadObject / GetObject; PutObject and DeleteObject pinned by If-Match or
//! If-None-Match) and bucket policies (GetBucketPolicy; PutBucketPolicy, no precondition).

use aws_config::SdkConfig;
use aws_sdk_s3::operation::RequestId;
use aws_sdk_s3::primitives::ByteStream;
use serde_json::{Value, json};

use seb_target::{MutationStatus, TargetError};

use super::{Called, Live, failure};
use crate::arn::Resource;
use crate::profiles::Op;

fn client(sdk: &SdkConfig, path_style: bool) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk).force_path_style(path_style).build(),
    )
}

/// Read the object (HEAD; with `detail` also the body) or the bucket policy.
pub(crate) async fn observe(
    sdk: &SdkConfig,
    path_style: bool,
    res: &Resource,
    detail: bool,
) -> Result<Live, TargetError> {
    let c = client(sdk, path_style);
    match res {
        Resource::S3Object { bucket, key } => {
            let head = c.head_object().bucket(bucket).key(key).send().await;
            let head = match head {
                Ok(h) => h,
                Err(e) => {
                    let f = failure(e);
                    if f.status == Some(404) {
                        return Ok(Live::absent());
                    }
                    return Err(f.into_read_error("s3:HeadObject"));
                }
            };
            let etag = head.e_tag().map(str::to_owned);
            let mut obj = json!({
                "etag": etag,
                "content_length": head.content_length(),
                "content_type": head.content_type(),
            });
            if detail {
                let got = c.get_object().bucket(bucket).key(key).send().await;
                match got {
                    Ok(o) => {
                        let etag = o.e_tag().map(str::to_owned);
                        let bytes = o
                            .body
                            .collect()
                            .await
                            .map_err(|e| TargetError::unavailable_from("s3:GetObject body", e))?
                            .into_bytes();
                        if let Some(m) = obj.as_object_mut() {
                            m.insert(
                                "body".into(),
                                Value::String(String::from_utf8_lossy(&bytes).into_owned()),
                            );
                            m.insert("etag".into(), json!(etag));
                        }
                    }
                    Err(e) => {
                        let f = failure(e);
                        if f.status == Some(404) {
                            return Ok(Live::absent());
                        }
                        return Err(f.into_read_error("s3:GetObject"));
                    }
                }
            }
            let version = obj.get("etag").and_then(Value::as_str).map(str::to_owned);
            Ok(Live { object: obj, version })
        }
        Resource::S3Bucket { bucket } => match c.get_bucket_policy().bucket(bucket).send().await {
            Ok(p) => {
                let policy = match p.policy() {
                    Some(s) => serde_json::from_str::<Value>(s).map_err(|e| {
                        TargetError::unavailable_from("bucket policy is not JSON", e)
                    })?,
                    None => Value::Null,
                };
                Ok(Live { object: json!({"policy": policy}), version: None })
            }
            Err(e) => {
                let f = failure(e);
                match f.code.as_deref() {
                    Some("NoSuchBucketPolicy") => {
                        Ok(Live { object: json!({"policy": null}), version: None })
                    }
                    Some("NoSuchBucket") => Ok(Live::absent()),
                    _ => Err(f.into_read_error("s3:GetBucketPolicy")),
                }
            }
        },
        _ => Err(TargetError::invalid("not an S3 resource")),
    }
}

/// Perform the mutation with the scoped session, pinned by `observed_version` (the ETag;
/// `None` means the object was absent).
pub(crate) async fn mutate(
    sdk: &SdkConfig,
    path_style: bool,
    op: Op,
    res: &Resource,
    params: &Value,
    observed_version: Option<&str>,
) -> Result<Called, TargetError> {
    let c = client(sdk, path_style);
    // A failed If-Match (412), an If-Match on an object deleted meanwhile (404 NoSuchKey),
    // or a concurrent conditional write (409 ConditionalRequestConflict) all mean the state
    // the drift check saw is gone; nothing was written.
    let conflict = |status: Option<u16>, code: Option<&str>| {
        status == Some(412)
            || status == Some(409)
            || (code == Some("NoSuchKey") && observed_version.is_some())
    };
    match (op, res) {
        (Op::S3PutObject, Resource::S3Object { bucket, key }) => {
            let body =
                params.get("body").and_then(Value::as_str).unwrap_or_default().as_bytes().to_vec();
            let mut req = c.put_object().bucket(bucket).key(key).body(ByteStream::from(body));
            if let Some(ct) = params.get("content_type").and_then(Value::as_str) {
                req = req.content_type(ct);
            }
            req = match observed_version {
                Some(etag) => req.if_match(etag),
                None => req.if_none_match("*"),
            };
            match req.send().await {
                Ok(out) => Ok(Called {
                    status: MutationStatus::Applied,
                    request_id: out.request_id().map(str::to_owned),
                    result: Some(json!({"etag": out.e_tag(), "version_id": out.version_id()})),
                    error: None,
                }),
                Err(e) => {
                    let f = failure(e);
                    let is_conflict = conflict(f.status, f.code.as_deref());
                    f.into_called("s3:PutObject", is_conflict)
                }
            }
        }
        (Op::S3DeleteObject, Resource::S3Object { bucket, key }) => {
            // S3 has no "delete only if absent" condition: deleting an object that was absent
            // at the drift check could remove one created since, unpinned. Refused, not sent.
            let Some(etag) = observed_version else {
                return Ok(Called {
                    status: MutationStatus::Failed,
                    request_id: None,
                    result: None,
                    error: Some("s3:DeleteObject: the object was absent at the drift check; an unpinned delete is refused".into()),
                });
            };
            let req = c.delete_object().bucket(bucket).key(key).if_match(etag);
            match req.send().await {
                Ok(out) => Ok(Called {
                    status: MutationStatus::Applied,
                    request_id: out.request_id().map(str::to_owned),
                    result: Some(
                        json!({"delete_marker": out.delete_marker(), "version_id": out.version_id()}),
                    ),
                    error: None,
                }),
                Err(e) => {
                    let f = failure(e);
                    let is_conflict = conflict(f.status, f.code.as_deref());
                    f.into_called("s3:DeleteObject", is_conflict)
                }
            }
        }
        (Op::S3PutBucketPolicy, Resource::S3Bucket { bucket }) => {
            let policy = params.get("policy").map(Value::to_string).unwrap_or_default();
            match c.put_bucket_policy().bucket(bucket).policy(policy).send().await {
                Ok(out) => Ok(Called {
                    status: MutationStatus::Applied,
                    request_id: out.request_id().map(str::to_owned),
                    result: Some(json!({})),
                    error: None,
                }),
                Err(e) => failure(e).into_called("s3:PutBucketPolicy", false),
            }
        }
        _ => Err(TargetError::invalid(format!("{op:?} is not an S3 operation on this resource"))),
    }
}
