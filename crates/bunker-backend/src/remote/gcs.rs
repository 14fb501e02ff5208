//! Google Cloud Storage, configured as Google's client libraries are:
//! `GOOGLE_APPLICATION_CREDENTIALS` (a service-account JSON file), and
//! `STORAGE_EMULATOR_HOST` for an emulator.

use opendal::services::Gcs;
use opendal::Operator;

use super::{Service, ServiceError, Upload};
use crate::Settings;

pub(super) fn service(bucket: &str, prefix: &str, s: &Settings) -> Result<Service, ServiceError> {
    let emulator = s
        .env("STORAGE_EMULATOR_HOST")
        .map(|h| match h.contains("://") {
            true => h.to_string(),
            false => format!("http://{h}"),
        });
    let mut b = Gcs::default()
        .bucket(bucket)
        .root(&format!("/{prefix}"))
        .disable_config_load()
        .disable_vm_metadata();
    if let Some(endpoint) = s
        .option("gcs.endpoint")
        .map(str::to_string)
        .or(emulator.clone())
    {
        b = b.endpoint(&endpoint);
    }
    let credentials = s
        .option("gcs.credentials")
        .or(s.env("GOOGLE_APPLICATION_CREDENTIALS"));
    match (credentials, &emulator) {
        (Some(path), _) => b = b.credential_path(path),
        // Emulators take no credentials, as with Google's own clients.
        (None, Some(_)) => b = b.skip_signature(),
        (None, None) => return Err(ServiceError::Config(
            "no GCS credentials: set GOOGLE_APPLICATION_CREDENTIALS to a service-account JSON file"
                .into(),
        )),
    }
    Ok(Service {
        object_lock: None,
        op: Operator::new(b)?,
        secrets: Vec::new(),
        // Each object in one request: multipart (XML API) is not available
        // on every GCS endpoint (the emulator refuses it), and a pack fits.
        upload: Upload::OneRequest,
        // GCS honours ifGenerationMatch=0; the emulator ignores it, which
        // the conformance suite declares.
        atomic_create: true,
        batch_delete: false,
        missing_dir_is_empty: false,
        explain: None,
    })
}
