//! Storage prices for the projected monthly cost.

use crate::config::Prices;

/// When the default prices below were the providers' list prices.
pub const PRICES_AS_OF: &str = "2024-11 list prices: S3 Standard us-east-1, Azure Blob Hot LRS East US, GCS Standard us-central1; first tier";

/// USD per GiB and month by storage kind, unless the config's `[prices]` says otherwise.
const S3: f64 = 0.023;
const AZURE_HOT: f64 = 0.018;
const GCS_STANDARD: f64 = 0.020;

/// The price per GiB-month of storing at `url`: the config's for its kind,
/// else the default (local disks and SFTP hosts: 0, the hardware is yours).
pub fn price_per_gib_month(prices: &Prices, url: &str) -> f64 {
    let scheme = url.split_once("://").map_or("local", |(s, _)| s);
    match scheme {
        "s3" => prices.s3.unwrap_or(S3),
        "azblob" => prices.azblob.unwrap_or(AZURE_HOT),
        "gcs" => prices.gcs.unwrap_or(GCS_STANDARD),
        "sftp" => prices.sftp.unwrap_or(0.0),
        _ => prices.local.unwrap_or(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let mut p = Prices::default();
        assert_eq!(price_per_gib_month(&p, "s3://b/p"), 0.023);
        assert_eq!(price_per_gib_month(&p, "/srv/repo"), 0.0);
        assert_eq!(price_per_gib_month(&p, "file:///srv/repo"), 0.0);
        p.local = Some(0.01);
        p.gcs = Some(0.5);
        assert_eq!(price_per_gib_month(&p, "/srv/repo"), 0.01);
        assert_eq!(price_per_gib_month(&p, "gcs://b"), 0.5);
        assert_eq!(price_per_gib_month(&p, "azblob://c"), 0.018);
    }
}
