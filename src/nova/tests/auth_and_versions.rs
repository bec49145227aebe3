use std::time::{Duration, UNIX_EPOCH};

use serde_json::json;

use super::admin_password;

use crate::nova::auth::{
    choose_endpoint, parse_utc_timestamp, token_request_body, token_url, Token,
};
use crate::nova::cloud_config::{
    ApplicationCredentialRef, AuthMethod, DomainRef, Interface, Secret, UserRef,
};
use crate::nova::microversion::{
    parse_version_document, versioned_root, Microversion, VersionNeed, VersionRange,
};

const TOKEN_BODY: &str = include_str!("../fixtures/keystone_token_admin.json");

fn v(major: u16, minor: u16) -> Microversion {
    Microversion::new(major, minor)
}

#[test]
fn the_token_url_gets_v3_only_when_the_auth_url_names_no_version() {
    assert_eq!(
        token_url("http://10.77.0.10:5000/v3"),
        "http://10.77.0.10:5000/v3/auth/tokens"
    );
    assert_eq!(
        token_url("http://10.77.0.10:5000/v3/"),
        "http://10.77.0.10:5000/v3/auth/tokens"
    );
    assert_eq!(
        token_url("http://10.77.0.10:5000"),
        "http://10.77.0.10:5000/v3/auth/tokens"
    );
    assert_eq!(
        token_url("https://cloud.example/identity/"),
        "https://cloud.example/identity/v3/auth/tokens"
    );
}

#[test]
fn a_password_login_is_scoped_to_its_project() {
    let auth = admin_password(DomainRef::Id("default".into()));
    assert_eq!(
        token_request_body(&auth),
        json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "domain": {"name": "Default"}, "password": "pw"}}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}
        }})
    );
}

#[test]
fn an_application_credential_login_carries_no_scope() {
    let by_id = AuthMethod::ApplicationCredential {
        credential: ApplicationCredentialRef::Id("ac1".into()),
        secret: Secret::new("s"),
    };
    assert_eq!(
        token_request_body(&by_id),
        json!({"auth": {"identity": {"methods": ["application_credential"],
            "application_credential": {"id": "ac1", "secret": "s"}}}})
    );
    let by_name = AuthMethod::ApplicationCredential {
        credential: ApplicationCredentialRef::Name {
            name: "ferry".into(),
            user: UserRef::Id("u1".into()),
        },
        secret: Secret::new("s"),
    };
    let body = token_request_body(&by_name);
    assert_eq!(
        body["auth"]["identity"]["application_credential"],
        json!({"name": "ferry", "user": {"id": "u1"}, "secret": "s"})
    );
    assert!(body["auth"].get("scope").is_none());
}

#[test]
fn the_labs_token_gives_expiry_roles_and_catalog() {
    let token = Token::parse("gAAAA-token", TOKEN_BODY.as_bytes()).unwrap();
    assert_eq!(token.value.expose(), "gAAAA-token");
    // `expires_at` 2026-12-02T05:49:06.000000Z: `date -u -d 2026-12-02T05:49:06Z +%s`
    assert_eq!(token.expires_at_unix_seconds, Some(1_796_190_546));
    assert_eq!(token.role_names, ["admin", "reader", "member"]);

    let issued = UNIX_EPOCH + Duration::from_secs(1_796_190_546 - 3_600);
    assert!(!token.expires_soon(issued));
    assert!(token.expires_soon(UNIX_EPOCH + Duration::from_secs(1_796_190_546 - 30)));

    let compute = choose_endpoint(
        &token.catalog,
        "compute",
        Some("RegionOne"),
        Interface::Public,
    );
    assert_eq!(compute.unwrap(), "http://10.77.0.10:8774/v2.1");
    let placement = choose_endpoint(&token.catalog, "placement", None, Interface::Internal);
    assert_eq!(placement.unwrap(), "http://10.77.0.10:8778");
    let identity = choose_endpoint(&token.catalog, "identity", None, Interface::Admin);
    assert_eq!(identity.unwrap(), "http://10.77.0.10:5000/v3");
}

#[test]
fn no_endpoint_in_the_region_lists_what_the_catalog_holds() {
    let token = Token::parse("t", TOKEN_BODY.as_bytes()).unwrap();
    let listing = choose_endpoint(
        &token.catalog,
        "compute",
        Some("RegionTwo"),
        Interface::Public,
    )
    .unwrap_err();
    assert!(
        listing.contains("compute public@RegionOne http://10.77.0.10:8774/v2.1"),
        "{listing}"
    );
    assert!(
        listing.contains("placement internal@RegionOne"),
        "{listing}"
    );
}

#[test]
fn a_body_that_is_not_a_token_is_refused() {
    let error = Token::parse("t", br#"{"error": {"code": 401}}"#).unwrap_err();
    assert!(error.contains("not Keystone v3's"), "{error}");
}

#[test]
fn utc_timestamps_parse_across_month_and_leap_boundaries() {
    // `date -u -d 2000-02-29T23:59:59Z +%s`
    assert_eq!(
        parse_utc_timestamp("2000-02-29T23:59:59Z"),
        Some(951_868_799)
    );
    assert_eq!(parse_utc_timestamp("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(
        parse_utc_timestamp("2026-12-02T05:49:06+00:00"),
        Some(1_796_190_546)
    );
    assert_eq!(parse_utc_timestamp("tomorrow"), None);
    assert_eq!(parse_utc_timestamp("2026-13-02T05:49:06Z"), None);
}

#[test]
fn microversions_order_numerically() {
    assert!(v(2, 9) < v(2, 10));
    assert!(v(2, 88) > v(2, 87));
    assert_eq!(Microversion::parse("2.93"), Some(v(2, 93)));
    assert_eq!(Microversion::parse("latest"), None);
    assert_eq!(v(2, 65).to_string(), "2.65");
}

#[test]
fn a_call_sends_its_preferred_version_capped_by_the_cloud_or_is_refused() {
    let zed = VersionRange {
        min: v(2, 1),
        max: v(2, 93),
    };
    let old = VersionRange {
        min: v(2, 1),
        max: v(2, 60),
    };
    let hypervisors = VersionNeed::between(v(2, 1), v(2, 88));
    assert_eq!(hypervisors.negotiate(zed), Ok(v(2, 88)));
    assert_eq!(hypervisors.negotiate(old), Ok(v(2, 60)));
    let abort_queued = VersionNeed::exactly(v(2, 65));
    assert_eq!(abort_queued.negotiate(zed), Ok(v(2, 65)));
    assert_eq!(abort_queued.negotiate(old), Err(v(2, 65)));
    // A cloud whose minimum is above the call's preference gets its own minimum.
    let raised = VersionRange {
        min: v(2, 30),
        max: v(2, 93),
    };
    assert_eq!(
        VersionNeed::exactly(v(2, 1)).negotiate(raised),
        Ok(v(2, 30))
    );
}

#[test]
fn the_labs_version_documents_give_2_1_to_2_93() {
    let expected = VersionRange {
        min: v(2, 1),
        max: v(2, 93),
    };
    let versioned = include_bytes!("../fixtures/compute_version_v2.1.json");
    assert_eq!(parse_version_document(versioned), Ok(expected));
    let root = include_bytes!("../fixtures/compute_versions_root.json");
    assert_eq!(parse_version_document(root), Ok(expected));
    assert!(parse_version_document(b"<html>").is_err());
    assert!(parse_version_document(br#"{"versions": [{"id": "v2.0"}]}"#).is_err());
}

#[test]
fn the_version_document_is_read_at_v2_1_even_with_a_project_in_the_endpoint() {
    assert_eq!(
        versioned_root("http://10.77.0.10:8774/v2.1"),
        "http://10.77.0.10:8774/v2.1"
    );
    assert_eq!(
        versioned_root("http://nova:8774/v2.1/7e05823dbae9433fb2fa2c5359f5a427/"),
        "http://nova:8774/v2.1"
    );
    assert_eq!(
        versioned_root("https://cloud.example/compute/v2.1"),
        "https://cloud.example/compute/v2.1"
    );
}
