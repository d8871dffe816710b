//! DynamoDB items: GetItem (consistent read); PutItem, UpdateItem, DeleteItem pinned by a
//! ConditionExpression equal to every attribute of the observed item, or
//! `attribute_not_exists` of the key when it was absent.

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::RequestId;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value, json};

use seb_target::{MutationStatus, TargetError};

use super::{Called, Live, failure};
use crate::arn::Resource;
use crate::profiles::Op;

fn bad(msg: impl Into<String>) -> TargetError {
    TargetError::invalid(msg.into())
}

/// DynamoDB JSON → SDK attribute value (params were validated by the profile).
pub(crate) fn to_av(v: &Value) -> Result<AttributeValue, TargetError> {
    let m = v.as_object().ok_or_else(|| bad("attribute value must be an object"))?;
    let (t, x) = m.iter().next().ok_or_else(|| bad("empty attribute value"))?;
    let s = |x: &Value| {
        x.as_str().map(str::to_owned).ok_or_else(|| bad(format!("`{t}` needs a string")))
    };
    let strs = |x: &Value| -> Result<Vec<String>, TargetError> {
        x.as_array().ok_or_else(|| bad(format!("`{t}` needs a list")))?.iter().map(s).collect()
    };
    let blob = |x: &Value| -> Result<Blob, TargetError> {
        B64.decode(s(x)?).map(Blob::new).map_err(|e| bad(format!("`B` is not base64: {e}")))
    };
    Ok(match t.as_str() {
        "S" => AttributeValue::S(s(x)?),
        "N" => AttributeValue::N(s(x)?),
        "B" => AttributeValue::B(blob(x)?),
        "BOOL" => AttributeValue::Bool(x.as_bool().ok_or_else(|| bad("`BOOL` needs a boolean"))?),
        "NULL" => AttributeValue::Null(true),
        "SS" => AttributeValue::Ss(strs(x)?),
        "NS" => AttributeValue::Ns(strs(x)?),
        "BS" => AttributeValue::Bs(
            x.as_array()
                .ok_or_else(|| bad("`BS` needs a list"))?
                .iter()
                .map(blob)
                .collect::<Result<_, _>>()?,
        ),
        "L" => AttributeValue::L(
            x.as_array()
                .ok_or_else(|| bad("`L` needs a list"))?
                .iter()
                .map(to_av)
                .collect::<Result<_, _>>()?,
        ),
        "M" => AttributeValue::M(to_map(x)?),
        other => return Err(bad(format!("unknown attribute type `{other}`"))),
    })
}

pub(crate) fn to_map(v: &Value) -> Result<HashMap<String, AttributeValue>, TargetError> {
    v.as_object()
        .ok_or_else(|| bad("attribute map must be an object"))?
        .iter()
        .map(|(k, v)| Ok((k.clone(), to_av(v)?)))
        .collect()
}

/// SDK attribute value → DynamoDB JSON (sets sorted, so equal sets compare equal).
pub(crate) fn from_av(a: &AttributeValue) -> Value {
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        json!(v)
    };
    match a {
        AttributeValue::S(s) => json!({"S": s}),
        AttributeValue::N(n) => json!({"N": n}),
        AttributeValue::B(b) => json!({"B": B64.encode(b.as_ref())}),
        AttributeValue::Bool(b) => json!({"BOOL": b}),
        AttributeValue::Null(_) => json!({"NULL": true}),
        AttributeValue::Ss(v) => json!({"SS": sorted(v)}),
        AttributeValue::Ns(v) => json!({"NS": sorted(v)}),
        AttributeValue::Bs(v) => {
            let v: Vec<String> = v.iter().map(|b| B64.encode(b.as_ref())).collect();
            json!({"BS": sorted(&v)})
        }
        AttributeValue::L(l) => json!({"L": l.iter().map(from_av).collect::<Vec<_>>()}),
        AttributeValue::M(m) => json!({"M": from_map(m)}),
        _ => json!({"UNKNOWN": null}),
    }
}

pub(crate) fn from_map(m: &HashMap<String, AttributeValue>) -> Value {
    let mut out = Map::new();
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    for k in keys {
        if let Some(v) = m.get(k) {
            out.insert(k.clone(), from_av(v));
        }
    }
    Value::Object(out)
}

fn client(sdk: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(sdk)
}

/// Read the item named by `params.key` (strongly consistent). The version is the item's
/// canonical JSON: the condition expression is built from it.
pub(crate) async fn observe(
    sdk: &SdkConfig,
    res: &Resource,
    params: &Value,
) -> Result<Live, TargetError> {
    let Resource::DynamoTable { table } = res else {
        return Err(bad("not a DynamoDB table"));
    };
    let key = to_map(params.get("key").ok_or_else(|| bad("params need `key`"))?)?;
    let out = client(sdk)
        .get_item()
        .table_name(table)
        .set_key(Some(key))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| failure(e).into_read_error("dynamodb:GetItem"))?;
    match out.item() {
        None => Ok(Live::absent()),
        Some(item) => {
            let obj = from_map(item);
            Ok(Live { version: Some(obj.to_string()), object: obj })
        }
    }
}

/// A condition expression with its attribute names and values.
pub(crate) type Pinned = (String, HashMap<String, String>, HashMap<String, AttributeValue>);

/// The condition pinning the observed state: every observed attribute equal, or the key
/// absent. Returns (expression, names, values).
pub(crate) fn pin(observed: Option<&str>, key: &Map<String, Value>) -> Result<Pinned, TargetError> {
    let mut names = HashMap::new();
    let mut values = HashMap::new();
    let mut parts = Vec::new();
    match observed {
        None => {
            for (i, k) in key.keys().enumerate() {
                names.insert(format!("#p{i}"), k.clone());
                parts.push(format!("attribute_not_exists(#p{i})"));
            }
        }
        Some(v) => {
            let item: Value = serde_json::from_str(v)
                .map_err(|e| bad(format!("observed version is not an item: {e}")))?;
            let m = item.as_object().ok_or_else(|| bad("observed version is not an item"))?;
            for (i, (k, av)) in m.iter().enumerate() {
                names.insert(format!("#p{i}"), k.clone());
                values.insert(format!(":p{i}"), to_av(av)?);
                parts.push(format!("#p{i} = :p{i}"));
            }
        }
    }
    if parts.is_empty() {
        return Err(bad("nothing to pin"));
    }
    Ok((parts.join(" AND "), names, values))
}

/// A conditional write's result as the broker records it: applied, a conflict when the
/// condition did not hold, or the other failures `Failure::into_called` sorts out.
fn settle<O, E>(
    r: Result<O, SdkError<E, HttpResponse>>,
    action: &str,
) -> Result<Called, TargetError>
where
    O: RequestId,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match r {
        Ok(out) => Ok(Called {
            status: MutationStatus::Applied,
            request_id: out.request_id().map(str::to_owned),
            result: Some(json!({})),
            error: None,
        }),
        Err(e) => {
            let f = failure(e);
            let conflict = f.code.as_deref() == Some("ConditionalCheckFailedException");
            f.into_called(action, conflict)
        }
    }
}

pub(crate) async fn mutate(
    sdk: &SdkConfig,
    op: Op,
    res: &Resource,
    params: &Value,
    observed_version: Option<&str>,
) -> Result<Called, TargetError> {
    let Resource::DynamoTable { table } = res else {
        return Err(bad("not a DynamoDB table"));
    };
    let key_json =
        params.get("key").and_then(Value::as_object).ok_or_else(|| bad("params need `key`"))?;
    let key = to_map(&Value::Object(key_json.clone()))?;
    let (cond, mut names, mut values) = pin(observed_version, key_json)?;
    let c = client(sdk);
    match op {
        Op::DynamoDbPutItem => {
            let item = to_map(params.get("item").ok_or_else(|| bad("params need `item`"))?)?;
            let r = c
                .put_item()
                .table_name(table)
                .set_item(Some(item))
                .condition_expression(cond)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values((!values.is_empty()).then_some(values))
                .send()
                .await;
            settle(r, "dynamodb:PutItem")
        }
        Op::DynamoDbUpdateItem => {
            let mut sets = Vec::new();
            if let Some(set) = params.get("set").and_then(Value::as_object) {
                for (i, (k, v)) in set.iter().enumerate() {
                    names.insert(format!("#s{i}"), k.clone());
                    values.insert(format!(":s{i}"), to_av(v)?);
                    sets.push(format!("#s{i} = :s{i}"));
                }
            }
            let mut removes = Vec::new();
            if let Some(rm) = params.get("remove").and_then(Value::as_array) {
                for (i, k) in rm.iter().filter_map(Value::as_str).enumerate() {
                    names.insert(format!("#r{i}"), k.to_owned());
                    removes.push(format!("#r{i}"));
                }
            }
            let mut expr = String::new();
            if !sets.is_empty() {
                expr.push_str(&format!("SET {}", sets.join(", ")));
            }
            if !removes.is_empty() {
                if !expr.is_empty() {
                    expr.push(' ');
                }
                expr.push_str(&format!("REMOVE {}", removes.join(", ")));
            }
            let r = c
                .update_item()
                .table_name(table)
                .set_key(Some(key))
                .update_expression(expr)
                .condition_expression(cond)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values((!values.is_empty()).then_some(values))
                .send()
                .await;
            settle(r, "dynamodb:UpdateItem")
        }
        Op::DynamoDbDeleteItem => {
            let r = c
                .delete_item()
                .table_name(table)
                .set_key(Some(key))
                .condition_expression(cond)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values((!values.is_empty()).then_some(values))
                .send()
                .await;
            settle(r, "dynamodb:DeleteItem")
        }
        _ => Err(bad(format!("{op:?} is not a DynamoDB operation"))),
    }
}
