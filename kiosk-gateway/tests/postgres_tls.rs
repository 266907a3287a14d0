//! PostgreSQL over TLS with the server verified (`sslmode=verify-full` and `sslrootcert`),
//! against a cluster this test starts itself: `initdb` from the PostgreSQL server packages,
//! `ssl = on` with a server certificate the `openssl` command-line tool made for 127.0.0.1 and
//! localhost, on a free port, its unix socket in the temporary directory. The gateway's store
//! and the issuer's register connect and migrate with the right CA; a wrong CA, and a server
//! whose certificate names another host, are refused, naming the database setting and never
//! printing the password. The shared test server on 5432 has no TLS, hence a cluster of our
//! own; it is stopped when the test ends, failed or not.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed unwrap in a test is a failed assertion"
)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use issuer::register::Register;
use kiosk_gateway::store::Store;

/// A password in every URL: the server trusts 127.0.0.1, so it is never checked, but it must
/// never appear in what the programs print.
const PASSWORD: &str = "pw-never-printed-7f3a";

/// Runs `program` to completion, panicking with its output if it fails.
fn run(program: &mut Command) -> Output {
    let output = program
        .output()
        .unwrap_or_else(|e| panic!("{program:?}: {e}"));
    assert!(
        output.status.success(),
        "{program:?}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The directory of `initdb` and `pg_ctl`: the newest /usr/lib/postgresql/*/bin (Debian's
/// server packages), else the PATH's. Missing, the test fails: it never skips.
fn postgres_bin() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    let found = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .expect("sh");
    let path = String::from_utf8(found.stdout).unwrap();
    let path = Path::new(path.trim());
    assert!(
        found.status.success() && path.is_file(),
        "initdb not found (the PostgreSQL server, Debian package postgresql): run \
         scripts/install-deps.sh"
    );
    path.parent().unwrap().to_owned()
}

/// A command run as the cluster's owner: initdb refuses root, so as root it runs as the
/// `postgres` account the server package creates.
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn is_root() -> bool {
    let id = run(Command::new("id").arg("-u"));
    String::from_utf8(id.stdout).unwrap().trim() == "0"
}

/// `openssl` in `dir` with the arguments of `line` (split at whitespace).
fn openssl(dir: &Path, line: &str) {
    run(Command::new("openssl")
        .current_dir(dir)
        .args(line.split_whitespace()));
}

/// A P-256 CA `<name>.crt`/`<name>.key` in `dir`.
fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &format!(
            "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout {name}.key \
             -out {name}.crt -days 2 -subj /CN=kiosk-test-{name} \
             -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign"
        ),
    );
}

/// The server's certificate and key, signed by `ca`, naming only 127.0.0.1 and localhost.
fn make_server_cert(dir: &Path, ca: &str) {
    openssl(
        dir,
        "req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key \
         -out server.csr -subj /CN=localhost",
    );
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        dir,
        &format!(
            "x509 -req -in server.csr -CA {ca}.crt -CAkey {ca}.key -CAcreateserial \
             -out server.crt -days 2 -extfile server.ext"
        ),
    );
}

/// A cluster of this test's own, stopped on drop (also when an assertion failed).
struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
    tls: PathBuf,
}

impl Cluster {
    /// initdb, TLS on, listening on 127.0.0.1 and 127.0.0.2 at a free port, started and ready
    /// (`pg_ctl start --wait` returns once it accepts connections).
    fn start() -> Cluster {
        let bin = postgres_bin();
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        std::fs::create_dir(&tls).unwrap();
        make_ca(&tls, "right-ca");
        make_ca(&tls, "wrong-ca");
        make_server_cert(&tls, "right-ca");
        if is_root() {
            run(Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(dir.path()));
        }
        let data = dir.path().join("data");
        run(as_owner(&bin.join("initdb"))
            .args(["--auth=trust", "--username=postgres", "--no-sync", "-D"])
            .arg(&data));
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1,127.0.0.2'\n\
             unix_socket_directories = '{}'\nssl = on\nssl_cert_file = '{}'\n\
             ssl_key_file = '{}'\nfsync = off\n",
            dir.path().display(),
            tls.join("server.crt").display(),
            tls.join("server.key").display(),
        );
        let conf_path = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path).unwrap();
        text.push_str(&conf);
        std::fs::write(&conf_path, text).unwrap();
        let cluster = Cluster {
            bin,
            data,
            port,
            _dir: dir,
            tls,
        };
        run(as_owner(&cluster.bin.join("pg_ctl"))
            .args(["start", "--wait", "--timeout=60", "--silent", "-D"])
            .arg(&cluster.data)
            .arg("-l")
            .arg(cluster.data.join("server.log")));
        cluster
    }

    /// A URL of database `db` on `host`, verified against the CA `ca`.
    fn url(&self, host: &str, db: &str, ca: &str) -> String {
        format!(
            "postgres://postgres:{PASSWORD}@{host}:{}/{db}?sslmode=verify-full&sslrootcert={}",
            self.port,
            self.tls.join(format!("{ca}.crt")).display()
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_owner(&self.bin.join("pg_ctl"))
            .args(["stop", "--mode=immediate", "--wait", "--silent", "-D"])
            .arg(&self.data)
            .output();
    }
}

/// Creates databases `names` on the cluster (over a verified connection too).
async fn create_databases(cluster: &Cluster, names: &[&str]) {
    use sqlx::Connection;
    let url = cluster.url("127.0.0.1", "postgres", "right-ca");
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    for name in names {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    conn.close().await.unwrap();
}

/// How many migrations the database at `url` has applied.
async fn migrations(url: &str) -> i64 {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

/// `kiosk-gateway admin terminal list` with the gateway database `url`.
fn admin_list(url: &str, data_dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiosk-gateway"))
        .args(["admin", "terminal", "list"])
        .env_remove("KIOSK_CONFIG")
        .env("KIOSK_DATA_DIR", data_dir)
        .env("KIOSK_DATABASE_URL", url)
        .env("RUST_LOG", "debug")
        .output()
        .unwrap()
}

#[tokio::test]
async fn store_and_register_connect_only_to_the_server_their_ca_names() {
    let cluster = Cluster::start();
    create_databases(&cluster, &["gateway", "register"]).await;

    // The right CA and the certificate's names: both connect and migrate.
    let gateway = cluster.url("127.0.0.1", "gateway", "right-ca");
    let store = Store::open(&gateway).await.expect("verified store");
    assert!(store.ping().await);
    assert!(migrations(&gateway).await > 0, "the store migrated");
    let register_url = cluster.url("127.0.0.1", "register", "right-ca");
    Register::open(&register_url)
        .await
        .expect("verified register");
    assert!(migrations(&register_url).await > 0, "the register migrated");
    let by_name = cluster.url("localhost", "gateway", "right-ca");
    Store::open(&by_name)
        .await
        .expect("the DNS name verifies too");

    // Another CA: refused, saying why and which settings to look at.
    let wrong_ca = cluster.url("127.0.0.1", "gateway", "wrong-ca");
    let error = Store::open(&wrong_ca)
        .await
        .map(drop)
        .expect_err("wrong CA refused");
    let text = error.to_string();
    assert!(text.contains("UnknownIssuer"), "{text}");
    assert!(text.contains("sslrootcert"), "{text}");
    let error = Register::open(&cluster.url("127.0.0.1", "register", "wrong-ca"))
        .await
        .map(drop)
        .expect_err("wrong CA refused");
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");

    // The server's certificate names 127.0.0.1 and localhost, not 127.0.0.2, where the
    // same server listens: with verify-full, refused.
    let other_host = cluster.url("127.0.0.2", "gateway", "right-ca");
    let text = Store::open(&other_host)
        .await
        .map(drop)
        .expect_err("refused")
        .to_string();
    assert!(text.contains("not valid for name"), "{text}");
    let error = Register::open(&cluster.url("127.0.0.2", "register", "right-ca"))
        .await
        .map(drop)
        .expect_err("other host refused");
    assert!(error.to_string().contains("not valid for name"), "{error}");
}

#[tokio::test]
async fn the_binaries_name_the_database_setting_never_the_password() {
    let cluster = Cluster::start();
    create_databases(&cluster, &["gateway", "register"]).await;
    let data_dir = tempfile::tempdir().unwrap();

    let ok = admin_list(
        &cluster.url("127.0.0.1", "gateway", "right-ca"),
        data_dir.path(),
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    for (url, why) in [
        (
            cluster.url("127.0.0.1", "gateway", "wrong-ca"),
            "UnknownIssuer",
        ),
        (
            cluster.url("127.0.0.2", "gateway", "right-ca"),
            "not valid for name",
        ),
    ] {
        let refused = admin_list(&url, data_dir.path());
        let stderr = String::from_utf8_lossy(&refused.stderr);
        let stdout = String::from_utf8_lossy(&refused.stdout);
        assert_eq!(refused.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("database_url (or KIOSK_DATABASE_URL): ")
                && stderr.contains(why)
                && stderr.contains("sslrootcert"),
            "{stderr}"
        );
        assert!(
            !stderr.contains(PASSWORD) && !stdout.contains(PASSWORD),
            "{stderr}"
        );
    }

    // The issuer's process path: `issuer serve` opens its register through serve::start.
    let pki = Path::new(env!("CARGO_MANIFEST_DIR")).join("../devkit/testdata/pki");
    let read = |name: &str| std::fs::read(pki.join(name)).unwrap();
    let text = |name: &str| String::from_utf8(read(name)).unwrap();
    let options = issuer::serve::ServeOptions {
        database_url: cluster.url("127.0.0.1", "register", "wrong-ca"),
        municipality: kiosk_document::MunicipalityCode::parse("131016").unwrap(),
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: issuer::serve::IssuerTls {
            cert_pem: read("issuer.crt.pem"),
            key_pem: read("issuer.key.pem"),
            client_ca_pem: read("internal-ca.crt.pem"),
            handshake_timeout: std::time::Duration::from_secs(5),
        },
        signing_chain_pem: text("municipality-131016.crt.pem"),
        signing_key: kiosk_keys::Signer::open(
            pki.join("municipality-131016.key.pem").to_str().unwrap(),
            kiosk_keys::Algorithm::EcdsaP256Sha256,
        )
        .unwrap(),
    };
    let error = issuer::serve::start(options)
        .await
        .map(drop)
        .expect_err("refused");
    let message = format!("{error:#}");
    assert!(
        message.contains("--db (KIOSK_ISSUER_DB): ") && message.contains("UnknownIssuer"),
        "{message}"
    );
    assert!(!message.contains(PASSWORD), "{message}");
}
