//! The backend contract on every object store, on real servers over
//! loopback (scripts/test-services), and on a local directory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bunker_backend::testing::{conformance, Gaps, Service, TestServices};
use bunker_backend::{open, Backend, ErrorKind, FileKind, Location, Settings};

fn remote(services: &TestServices, service: Service, name: &str) -> Arc<dyn Backend> {
    let location = services.location(service, name);
    open(&location, &services.settings(service), true).unwrap()
}

#[test]
fn local_directory_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let location = Location::Local(dir.path().join("repo"));
    let b = open(&location, &Settings::default(), true).unwrap();
    assert!(!b.capabilities().retries, "local storage never retries");
    conformance(b, Gaps::default());
}

#[test]
fn s3_keeps_the_contract() {
    let Some(services) = TestServices::get("s3_keeps_the_contract") else {
        return;
    };
    let b = remote(&services, Service::S3, "conformance");
    assert!(b.capabilities().retries && b.capabilities().batch_delete);
    conformance(b, Gaps::default());
}

#[test]
fn azure_blob_keeps_the_contract() {
    let Some(services) = TestServices::get("azure_blob_keeps_the_contract") else {
        return;
    };
    conformance(
        remote(&services, Service::Azblob, "conformance"),
        Gaps::default(),
    );
}

#[test]
fn gcs_keeps_the_contract() {
    let Some(services) = TestServices::get("gcs_keeps_the_contract") else {
        return;
    };
    let b = remote(&services, Service::Gcs, "conformance");
    assert!(!b.capabilities().streamed_upload);
    conformance(
        b,
        Gaps {
            create_if_absent: true,
        },
    );
}

#[test]
fn a_missing_bucket_is_named() {
    let Some(services) = TestServices::get("a_missing_bucket_is_named") else {
        return;
    };
    for (service, url) in [
        (Service::S3, "s3://no-such-bucket/x"),
        (Service::Azblob, "azblob://no-such-container/x"),
        (Service::Gcs, "gcs://no-such-bucket/x"),
    ] {
        let b = open(
            &Location::parse(url).unwrap(),
            &services.settings(service),
            false,
        )
        .unwrap();
        let e = b.probe().unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound, "{url}: {e}");
        assert!(e.to_string().contains("does not exist"), "{url}: {e}");
    }
}

#[test]
fn wrong_credentials_fail_at_once_and_keep_the_key_secret() {
    let Some(services) = TestServices::get("wrong_credentials_fail_at_once") else {
        return;
    };
    // Azurite checks SharedKey signatures (moto and fake-gcs-server check nothing).
    let wrong_key = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXk=";
    let good = services.env(Service::Azblob).remove(0).1;
    let endpoint = good
        .split(';')
        .find_map(|p| p.strip_prefix("BlobEndpoint="))
        .unwrap();
    let conn = format!(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={wrong_key};BlobEndpoint={endpoint};"
    );
    let settings = Settings::from_env(
        [("AZURE_STORAGE_CONNECTION_STRING".to_string(), conn)],
        None,
    );
    let b = open(
        &services.location(Service::Azblob, "wrong-key"),
        &settings,
        false,
    )
    .unwrap();
    let started = Instant::now();
    let e = b.read(FileKind::Config, "").unwrap_err();
    assert_eq!(e.kind, ErrorKind::PermissionDenied, "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "retried a refusal"
    );
    assert!(!e.to_string().contains(wrong_key), "key in message: {e}");
}

#[test]
fn an_unreachable_endpoint_fails_within_the_retry_budget() {
    // Nothing listens on port 9 of loopback.
    let mut settings = Settings::from_env(
        [
            ("AWS_ACCESS_KEY_ID".to_string(), "test".to_string()),
            (
                "AWS_SECRET_ACCESS_KEY".to_string(),
                "secret-value".to_string(),
            ),
        ],
        None,
    );
    settings.set("s3.endpoint=http://127.0.0.1:9").unwrap();
    settings.set("retries=2").unwrap();
    let b = open(&Location::parse("s3://b/p").unwrap(), &settings, false).unwrap();
    let started = Instant::now();
    let e = b.read(FileKind::Config, "").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Transient, "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let text = e.to_string();
    assert!(text.contains("s3://b/p"), "names the repository: {text}");
    assert!(!text.contains("secret-value"), "{text}");
}

#[test]
fn missing_credentials_are_named_before_any_request() {
    let e = open(
        &Location::parse("s3://b/p").unwrap(),
        &Settings::from_env([], None),
        false,
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("AWS_ACCESS_KEY_ID"), "{e}");
    let e = open(
        &Location::parse("azblob://c/p").unwrap(),
        &Settings::from_env([], None),
        false,
    )
    .err()
    .unwrap();
    assert!(
        e.to_string().contains("AZURE_STORAGE_CONNECTION_STRING"),
        "{e}"
    );
    let e = open(
        &Location::parse("gcs://b/p").unwrap(),
        &Settings::from_env([], None),
        false,
    )
    .err()
    .unwrap();
    assert!(
        e.to_string().contains("GOOGLE_APPLICATION_CREDENTIALS"),
        "{e}"
    );
    // A path under the login's home cannot be reached yet: said, with the way out.
    let e = open(
        &Location::parse("sftp://host/~/backup").unwrap(),
        &Settings::from_env([], None),
        false,
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("absolute path"), "{e}");
}
