//! Auto Scaling groups: DescribeAutoScalingGroups; SetDesiredCapacity and
//! UpdateAutoScalingGroup. No precondition exists (the profile says so); the broker checks
//! the resulting sizes against the drift-checked min/max itself (moto does not).

use aws_config::SdkConfig;
use aws_sdk_autoscaling::operation::RequestId;
use serde_json::{Value, json};

use seb_target::{MutationStatus, TargetError};

use super::{Called, Live, failure};
use crate::arn::Resource;
use crate::profiles::Op;

pub(crate) async fn observe(sdk: &SdkConfig, res: &Resource) -> Result<Live, TargetError> {
    let Resource::AutoScalingGroup { name } = res else {
        return Err(TargetError::invalid("not an Auto Scaling group"));
    };
    let out = aws_sdk_autoscaling::Client::new(sdk)
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(name)
        .send()
        .await
        .map_err(|e| failure(e).into_read_error("autoscaling:DescribeAutoScalingGroups"))?;
    let Some(g) = out
        .auto_scaling_groups()
        .iter()
        .find(|g| g.auto_scaling_group_name() == Some(name.as_str()))
    else {
        return Ok(Live::absent());
    };
    Ok(Live {
        object: json!({
            "min_size": g.min_size(),
            "max_size": g.max_size(),
            "desired_capacity": g.desired_capacity(),
        }),
        version: None,
    })
}

fn i32_of(params: &Value, k: &str) -> Option<i32> {
    params.get(k).and_then(Value::as_i64).and_then(|x| i32::try_from(x).ok())
}

pub(crate) async fn mutate(
    sdk: &SdkConfig,
    op: Op,
    res: &Resource,
    params: &Value,
) -> Result<Called, TargetError> {
    let Resource::AutoScalingGroup { name } = res else {
        return Err(TargetError::invalid("not an Auto Scaling group"));
    };
    let c = aws_sdk_autoscaling::Client::new(sdk);
    let applied = |rid: Option<&str>| Called {
        status: MutationStatus::Applied,
        request_id: rid.map(str::to_owned),
        result: Some(json!({})),
        error: None,
    };
    match op {
        Op::AutoScalingSetDesiredCapacity => {
            let mut req = c
                .set_desired_capacity()
                .auto_scaling_group_name(name)
                .set_desired_capacity(i32_of(params, "desired_capacity"));
            if let Some(h) = params.get("honor_cooldown").and_then(Value::as_bool) {
                req = req.honor_cooldown(h);
            }
            match req.send().await {
                Ok(out) => Ok(applied(out.request_id())),
                Err(e) => failure(e).into_called("autoscaling:SetDesiredCapacity", false),
            }
        }
        Op::AutoScalingUpdateAutoScalingGroup => {
            let r = c
                .update_auto_scaling_group()
                .auto_scaling_group_name(name)
                .set_min_size(i32_of(params, "min_size"))
                .set_max_size(i32_of(params, "max_size"))
                .set_desired_capacity(i32_of(params, "desired_capacity"))
                .send()
                .await;
            match r {
                Ok(out) => Ok(applied(out.request_id())),
                Err(e) => failure(e).into_called("autoscaling:UpdateAutoScalingGroup", false),
            }
        }
        _ => Err(TargetError::invalid(format!("{op:?} is not an Auto Scaling operation"))),
    }
}
