//! Azure Blob Storage, configured as Azure's own tools are:
//! `AZURE_STORAGE_CONNECTION_STRING` (with the `BlobEndpoint=` form Azurite
//! and sovereign clouds use), or `AZURE_STORAGE_ACCOUNT` with
//! `AZURE_STORAGE_KEY` or `AZURE_STORAGE_SAS_TOKEN`.

use opendal::services::Azblob;
use opendal::Operator;

use super::{Service, ServiceError, Upload};
use crate::Settings;

pub(super) fn service(
    container: &str,
    prefix: &str,
    s: &Settings,
) -> Result<Service, ServiceError> {
    let mut secrets = Vec::new();
    let mut b = if let Some(conn) = s.env("AZURE_STORAGE_CONNECTION_STRING") {
        for part in conn.split(';') {
            if let Some((k, v)) = part.split_once('=') {
                if matches!(k.trim(), "AccountKey" | "SharedAccessSignature") {
                    secrets.push(v.trim().to_string());
                }
            }
        }
        Azblob::from_connection_string(conn).map_err(|_| {
            // OpenDAL's message may quote the string, key and all.
            ServiceError::Config(
                "AZURE_STORAGE_CONNECTION_STRING is not a valid connection string".into(),
            )
        })?
    } else {
        let account = s
            .option("azblob.account")
            .or(s.env("AZURE_STORAGE_ACCOUNT"))
            .ok_or_else(|| {
                ServiceError::Config(
                    "no Azure credentials: set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN".into(),
                )
            })?;
        let mut b = Azblob::default()
            .account_name(account)
            .endpoint(&format!("https://{account}.blob.core.windows.net"));
        match (s.env("AZURE_STORAGE_KEY"), s.env("AZURE_STORAGE_SAS_TOKEN")) {
            (Some(key), _) => {
                secrets.push(key.to_string());
                b = b.account_key(key);
            }
            (None, Some(sas)) => {
                let sas = sas.trim_start_matches('?');
                secrets.push(sas.to_string());
                b = b.sas_token(sas);
            }
            (None, None) => {
                return Err(ServiceError::Config(format!(
                    "no key for Azure storage account {account}: set AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN"
                )))
            }
        }
        b
    };
    if let Some(endpoint) = s.option("azblob.endpoint") {
        b = b.endpoint(endpoint);
    }
    let b = b.container(container).root(&format!("/{prefix}"));
    Ok(Service {
        object_lock: None,
        op: Operator::new(b)?,
        secrets,
        upload: Upload::Multipart,
        atomic_create: true,
        batch_delete: true,
        missing_dir_is_empty: false,
        explain: None,
    })
}
