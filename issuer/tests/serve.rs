//! `issuer::serve` over real mutual TLS: gateways are served, other certificates are refused,
//! and health follows the register (NOT_SERVING once its database is gone) and the drain.
#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed assertion"
)]

mod common;

use std::time::Duration;

use common::{CODE, TestDb, generated};
use issuer::serve::{IssuerTls, ServeOptions};
use kiosk_document::MunicipalityCode;
use kiosk_proto::v1 as pb;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

const PKI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../devkit/testdata/pki");
const SERVICE: &str = "kiosk.v1.IssuerService";

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{PKI}/{name}")).unwrap()
}

/// A channel to `addr` presenting the certificate `stem` of the test PKI.
async fn channel(
    addr: std::net::SocketAddr,
    stem: &str,
) -> Result<Channel, tonic::transport::Error> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read("internal-ca.crt.pem")))
        .identity(Identity::from_pem(
            read(&format!("{stem}.crt.pem")),
            read(&format!("{stem}.key.pem")),
        ))
        .domain_name("localhost");
    Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls)?
        .connect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_gateways_and_reports_the_register_in_health() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let db = TestDb::postgres("issuer").await;
    let (_, report) = generated(&db, 20).await;
    let resident = report.examples.values().flatten().next().unwrap().clone();
    let server = issuer::serve::start(ServeOptions {
        database_url: db.url.clone(),
        municipality: MunicipalityCode::parse(CODE).unwrap(),
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: IssuerTls {
            cert_pem: read("issuer.crt.pem"),
            key_pem: read("issuer.key.pem"),
            client_ca_pem: read("internal-ca.crt.pem"),
            handshake_timeout: Duration::from_secs(5),
        },
        signing_key: kiosk_keys::Signer::open(
            &format!("{PKI}/municipality-{CODE}.key.pem"),
            kiosk_keys::Algorithm::EcdsaP256Sha256,
        )
        .unwrap(),
        signing_chain_pem: String::from_utf8(read(&format!("municipality-{CODE}.crt.pem")))
            .unwrap(),
    })
    .await
    .unwrap();
    let addr = server.local_addr();

    // The gateway's internal certificate is served.
    let gateway = channel(addr, "gateway-internal").await.unwrap();
    let menu = pb::issuer_service_client::IssuerServiceClient::new(gateway.clone())
        .get_menu(pb::IssuerMenuRequest {
            municipality_code: CODE.into(),
            resident_ref: resident.as_str().to_owned(),
            as_of: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!menu.menu.unwrap().entries.is_empty());

    // A terminal certificate is not from the internal CA: the handshake refuses it, and the
    // first call fails without reaching the service.
    let refused = match channel(addr, "terminal-seven-131016-0042-k1").await {
        Err(_) => true,
        Ok(terminal) => HealthClient::new(terminal)
            .check(HealthCheckRequest {
                service: SERVICE.into(),
            })
            .await
            .is_err(),
    };
    assert!(refused, "a terminal certificate reached the issuer");

    // Health: serving, then NOT_SERVING once the register's database is gone.
    let mut health = HealthClient::new(gateway);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: SERVICE.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let status = |m: HealthCheckResponse| m.status;
    assert_eq!(
        status(watch.message().await.unwrap().unwrap()),
        ServingStatus::Serving as i32
    );
    db.cleanup().await;
    let next = tokio::time::timeout(Duration::from_secs(30), watch.message())
        .await
        .expect("health changes within the probe interval")
        .unwrap()
        .unwrap();
    assert_eq!(status(next), ServingStatus::NotServing as i32);

    // A Watch stream is a request in flight: the drain waits for it, so the client ends it.
    drop(watch);
    drop(health);
    server.shutdown(Duration::from_secs(5)).await.unwrap();
}
