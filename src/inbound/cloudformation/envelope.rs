//! The envelope of a CloudFormation request, read leniently so that even a request
//! that fails to parse can be answered.

use std::time::Duration;

use serde_json::Value;

use super::physical_id;

pub(super) struct Envelope {
    pub response_url: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    pub physical_id: Option<String>,
    pub request_type: String,
}

fn field(event: &Value, name: &str) -> String {
    event
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

impl Envelope {
    pub fn read(event: &Value) -> Envelope {
        Envelope {
            response_url: field(event, "ResponseURL"),
            stack_id: field(event, "StackId"),
            request_id: field(event, "RequestId"),
            logical_resource_id: field(event, "LogicalResourceId"),
            physical_id: event
                .get("PhysicalResourceId")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            request_type: field(event, "RequestType"),
        }
    }

    /// The id to answer with when the work never produced one.
    pub fn fallback_physical_id(&self) -> String {
        self.physical_id
            .clone()
            .unwrap_or_else(|| physical_id::marker(&self.request_id))
    }

    /// A Delete of something this function never created (the failed-Create marker,
    /// or no physical id at all): the id to answer SUCCESS with, touching nothing.
    pub fn nothing_to_delete(&self) -> Option<String> {
        if self.request_type != "Delete" {
            return None;
        }
        match &self.physical_id {
            Some(id) if physical_id::is_marker(id) => Some(id.clone()),
            Some(_) => None,
            None => Some(physical_id::marker(&self.request_id)),
        }
    }
}

/// `ServiceTimeout` bounds the work even when other properties are invalid.
pub(super) fn service_timeout(event: &Value) -> Option<Duration> {
    let raw = event.get("ResourceProperties")?.get("ServiceTimeout")?;
    let secs = raw.as_u64().or_else(|| raw.as_str()?.trim().parse().ok())?;
    (1..=3600)
        .contains(&secs)
        .then(|| Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn service_timeout_is_read_leniently_from_any_event() {
        assert_eq!(
            service_timeout(&json!({"ResourceProperties": {"ServiceTimeout": "30"}})),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            service_timeout(&json!({"ResourceProperties": {"ServiceTimeout": 0}})),
            None
        );
        assert_eq!(service_timeout(&json!({})), None);
    }

    #[test]
    fn only_a_delete_of_a_marker_or_of_nothing_is_a_no_op() {
        let marker = physical_id::marker("r0");
        let e = |t: &str, id: Option<&str>| {
            let mut v = json!({"RequestType": t, "RequestId": "r1"});
            if let Some(id) = id {
                v["PhysicalResourceId"] = json!(id);
            }
            Envelope::read(&v).nothing_to_delete()
        };
        assert_eq!(e("Delete", Some(&marker)), Some(marker.clone()));
        assert_eq!(e("Delete", None), Some(physical_id::marker("r1")));
        assert_eq!(e("Delete", Some("")), Some(physical_id::marker("r1")));
        assert_eq!(
            e("Delete", Some("arn:aws:dynamodb:us-east-1:1:table/t")),
            None
        );
        assert_eq!(e("Update", Some(&marker)), None);
    }
}
