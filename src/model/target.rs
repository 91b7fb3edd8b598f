//! Which resource a policy belongs to: an ARN (or an X-Ray policy name) turned into a
//! typed [`Target`] with the service, region and the identifiers each API wants.
//!
//! Only the resource kinds that accept a resource-based policy are accepted, so a
//! wrong ARN fails here, before any AWS call, with a message that says what fits.

use std::fmt;

pub use crate::services::Service;

/// The kind of resource inside a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource {
    DynamoDbTable { table: String },
    DynamoDbStream { table: String, label: String },
    KinesisStream { stream: String },
    KinesisConsumer { stream: String, consumer: String },
    XRayPolicy { name: String },
    ApsWorkspace { workspace_id: String },
    SsmParameter { name: String },
    SsmOpsItemGroup { name: String },
}

/// A validated policy target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub service: Service,
    /// The region whose endpoint serves the call.
    pub region: String,
    /// The ARN as given; `None` for X-Ray, which has none.
    pub arn: Option<String>,
    pub resource: Resource,
}

/// Why a target does not parse. Each says which property it is about ([`Self::property`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("ResourceArn {arn:?} is not an ARN (expected arn:partition:service:region:account:resource)")]
    NotAnArn { arn: String },
    #[error("ResourceArn {arn:?} has an unknown partition {partition:?}")]
    Partition { arn: String, partition: String },
    #[error(
        "ResourceArn {arn:?} is a {service:?} ARN; supported: DynamoDB table or stream, Kinesis \
         stream or consumer, Managed Prometheus workspace, SSM parameter or OpsItemGroup \
         (X-Ray policies take PolicyName)"
    )]
    Service { arn: String, service: String },
    #[error(
        "ResourceArn {arn:?} has region {region:?}, which is not a region name like us-east-1"
    )]
    ArnRegion { arn: String, region: String },
    #[error("ResourceArn {arn:?} has account {account:?}; expected 12 digits")]
    Account { arn: String, account: String },
    /// The resource part is not one of the service's kinds; `why` is its facts' text.
    #[error("ResourceArn {arn:?} {why}")]
    Resource { arn: String, why: String },
    #[error(
        "PolicyName {name:?} is not a valid X-Ray policy name (1-128 characters of letters, \
         digits and _+=,.@-)"
    )]
    PolicyName { name: String },
    #[error("Region {region:?} is not a region name like us-east-1")]
    Region { region: String },
}

impl TargetError {
    /// The request property at fault.
    pub fn property(&self) -> &'static str {
        match self {
            TargetError::PolicyName { .. } => "PolicyName",
            TargetError::Region { .. } => "Region",
            _ => "ResourceArn",
        }
    }
}

impl Target {
    /// An X-Ray policy, identified by name within a region.
    pub fn xray(name: &str, region: &str) -> Result<Target, TargetError> {
        let valid = !name.is_empty()
            && name.len() <= 128
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
        if !valid {
            return Err(TargetError::PolicyName {
                name: name.to_string(),
            });
        }
        if !is_region(region) {
            return Err(TargetError::Region {
                region: region.to_string(),
            });
        }
        Ok(Target {
            service: Service::XRay,
            region: region.to_string(),
            arn: None,
            resource: Resource::XRayPolicy {
                name: name.to_string(),
            },
        })
    }

    /// Parses an ARN of one of the resource kinds that carry a resource-based policy.
    pub fn from_arn(arn: &str) -> Result<Target, TargetError> {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let arn_ = || arn.to_string();
        if parts.len() != 6 || parts[0] != "arn" {
            return Err(TargetError::NotAnArn { arn: arn_() });
        }
        let (partition, service, region, account, resource) =
            (parts[1], parts[2], parts[3], parts[4], parts[5]);
        if !is_partition(partition) {
            return Err(TargetError::Partition {
                arn: arn_(),
                partition: partition.to_string(),
            });
        }
        // X-Ray has no ARNs: its facts name no resource forms.
        let parse = Service::from_key(service).and_then(|s| Some((s, s.facts().arn_resource?)));
        let Some((service, parse)) = parse else {
            return Err(TargetError::Service {
                arn: arn_(),
                service: service.to_string(),
            });
        };
        if !is_region(region) {
            return Err(TargetError::ArnRegion {
                arn: arn_(),
                region: region.to_string(),
            });
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TargetError::Account {
                arn: arn_(),
                account: account.to_string(),
            });
        }
        let segments: Vec<&str> = resource.split('/').collect();
        let resource =
            parse(&segments).map_err(|why| TargetError::Resource { arn: arn_(), why })?;
        Ok(Target {
            service,
            region: region.to_string(),
            arn: Some(arn.to_string()),
            resource,
        })
    }

    /// The identifier the service's API takes: the ARN, X-Ray's name, or AMP's workspace id.
    pub fn api_id(&self) -> &str {
        match &self.resource {
            Resource::XRayPolicy { name } => name,
            Resource::ApsWorkspace { workspace_id } => workspace_id,
            _ => self.arn.as_deref().unwrap_or_default(),
        }
    }

    /// What identifies the target for people and for the physical id: the ARN, or for
    /// X-Ray `xray:<region>:policy/<name>`.
    pub fn display_id(&self) -> String {
        match (&self.arn, &self.resource) {
            (Some(arn), _) => arn.clone(),
            (None, Resource::XRayPolicy { name }) => {
                format!("xray:{}:policy/{}", self.region, name)
            }
            (None, _) => String::new(),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display_id())
    }
}

fn is_partition(p: &str) -> bool {
    p == "aws"
        || p.strip_prefix("aws-").is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .split('-')
                    .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
        })
}

/// A region is a DNS label such as `us-east-1` or `cn-north-1`.
fn is_region(region: &str) -> bool {
    (4..=32).contains(&region.len())
        && region.contains('-')
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !region.starts_with('-')
        && !region.ends_with('-')
}

/// A non-empty name of ASCII letters, digits and the `extra` characters.
pub(crate) fn is_name(s: &str, extra: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamodb_table_and_stream_parse() {
        let t = Target::from_arn("arn:aws:dynamodb:eu-west-1:123456789012:table/orders").unwrap();
        assert_eq!(t.service, Service::DynamoDb);
        assert_eq!(t.region, "eu-west-1");
        assert_eq!(
            t.resource,
            Resource::DynamoDbTable {
                table: "orders".into()
            }
        );
        let s = Target::from_arn(
            "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-11-22T01:02:03.456",
        )
        .unwrap();
        assert!(matches!(s.resource, Resource::DynamoDbStream { .. }));
        assert_eq!(
            s.api_id(),
            "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-11-22T01:02:03.456"
        );
    }

    #[test]
    fn a_dynamodb_index_is_refused_with_advice() {
        let e =
            Target::from_arn("arn:aws:dynamodb:us-east-1:123456789012:table/orders/index/byDate")
                .unwrap_err();
        let e = e.to_string();
        assert!(e.contains("index") && e.contains("table's policy"), "{e}");
    }

    #[test]
    fn kinesis_consumer_keeps_its_creation_epoch() {
        let t = Target::from_arn(
            "arn:aws-cn:kinesis:cn-north-1:123456789012:stream/clicks/consumer/app:1700000000",
        )
        .unwrap();
        assert_eq!(
            t.resource,
            Resource::KinesisConsumer {
                stream: "clicks".into(),
                consumer: "app:1700000000".into()
            }
        );
    }

    #[test]
    fn aps_api_id_is_the_workspace_id() {
        let t =
            Target::from_arn("arn:aws:aps:us-west-2:123456789012:workspace/ws-1234-abcd").unwrap();
        assert_eq!(t.api_id(), "ws-1234-abcd");
    }

    #[test]
    fn ssm_parameter_paths_and_opsitemgroups_parse() {
        let t =
            Target::from_arn("arn:aws:ssm:us-east-1:123456789012:parameter/app/config").unwrap();
        assert_eq!(
            t.resource,
            Resource::SsmParameter {
                name: "app/config".into()
            }
        );
        let g =
            Target::from_arn("arn:aws:ssm:us-east-1:123456789012:opsitemgroup/default").unwrap();
        assert!(matches!(g.resource, Resource::SsmOpsItemGroup { .. }));
    }

    #[test]
    fn foreign_and_malformed_arns_are_refused() {
        for (arn, needle) in [
            ("arn:aws:s3:::my-bucket", "\"s3\""),
            ("not-an-arn", "not an ARN"),
            ("arn:aws:dynamodb:us-east-1:12345:table/t", "12 digits"),
            ("arn:aws:dynamodb:US_EAST:123456789012:table/t", "region"),
            ("arn:aws:kinesis:us-east-1:123456789012:table/t", "Kinesis"),
            (
                "arn:aws:aps:us-east-1:123456789012:rulegroupsnamespace/ws/x",
                "workspace",
            ),
            (
                "arn:foo:dynamodb:us-east-1:123456789012:table/t",
                "partition",
            ),
            ("arn:aws:xray:us-east-1:123456789012:group/g", "PolicyName"),
        ] {
            let e = Target::from_arn(arn).unwrap_err().to_string();
            assert!(e.contains(needle), "{arn}: {e}");
            assert!(e.contains("ResourceArn"), "{arn}: {e}");
        }
    }

    #[test]
    fn xray_names_and_display_ids() {
        let t = Target::xray("my-policy", "us-east-1").unwrap();
        assert_eq!(t.display_id(), "xray:us-east-1:policy/my-policy");
        let e = Target::xray("bad name!", "us-east-1").unwrap_err();
        assert_eq!(e.property(), "PolicyName");
        assert!(e.to_string().contains("PolicyName"));
        assert!(Target::xray(&"x".repeat(129), "us-east-1").is_err());
        let e = Target::xray("ok", "nowhere").unwrap_err();
        assert_eq!(e.property(), "Region");
        assert!(e.to_string().contains("Region"));
    }
}
