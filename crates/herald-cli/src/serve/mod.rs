//! `herald serve`: lock the data directory, bind the HTTP API, open the schema registry
//! and bind its REST API, start the broker (with the registry checking schema ids for
//! topics that ask for validation), print where everything is, and on SIGTERM or Ctrl-C
//! stop gracefully: HTTP and the registry's listener first (no new requests, requests
//! in flight finish), then the broker (connections drain, logs are synced and closed),
//! then the registry's log.

mod broker_transport;
mod dlq_api;
mod registry;
mod settings;

use std::{
    fs::{self, File, TryLockError},
    io::{IsTerminal, Write},
    net::SocketAddr,
    path::Path,
};

use herald_broker::{
    Broker, BrokerError, ListenerConfig, SaslConfig,
    http::{HttpError, HttpServer},
};
use herald_log::LogError;
use herald_security::{Authorizer, TlsServer, UserStore};
use tracing_subscriber::EnvFilter;

pub(crate) use settings::ServeArgs;
use settings::ServeConfig;

use crate::error::CliError;

/// Name of the lock file that keeps two brokers off one data directory.
const LOCK_FILE: &str = "herald.lock";
/// The address the client commands use when `--server` is not given.
const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// Runs the broker until SIGTERM or Ctrl-C.
pub(crate) async fn run(args: ServeArgs) -> Result<(), CliError> {
    let mut config = settings::resolve(&args, |name| std::env::var(name).ok())?;
    init_logging(config.log_level.as_deref())?;
    let descriptors = raise_descriptor_limit();
    let tls = load_tls(&mut config)?;
    let _lock = lock_data_dir(&config.broker.data_dir)?;
    open_users(&mut config)?;
    // Kafka listeners after the first, with the certificate and users loaded above.
    config.broker.more_listeners = config
        .more_kafka
        .iter()
        .map(|&(tls, sasl, addr)| {
            ListenerConfig::new(
                addr,
                config.loaded_tls.clone().filter(|_| tls),
                config.sasl.clone().filter(|_| sasl),
            )
        })
        .collect();

    let dlq = dlq_api::DlqState::default();
    let http = HttpServer::bind_with_routes(config.http.clone(), dlq_api::routes(dlq.clone()))
        .await
        .map_err(|e| match e {
            HttpError::Bind { addr, source } => in_use(addr, "HTTP", "--http-listen", source),
            e => CliError::runtime(e),
        })?;
    let registry = registry::Served::start(&config, tls.as_ref()).await?;
    let broker_config = config
        .broker
        .clone()
        .with_schema_id_check(registry.id_check());
    let handle = Broker::start(broker_config)
        .await
        .map_err(|e| broker_error(e, &config))?;
    http.set_ready(handle.broker().clone());
    check_descriptor_budget(descriptors, handle.broker());
    // The dead-letter routes append and read through this broker, in process.
    dlq.set(Some(broker_transport::BrokerTransport::new(
        handle.broker().clone(),
    )));
    announce(
        &config,
        handle.kafka_addrs(),
        http.local_addr(),
        registry.local_addr(),
        handle.broker(),
    );

    wait_for_signal(tls.as_ref()).await?;
    tracing::info!("shutting down: finishing requests in flight");
    http.shutdown().await;
    let registry = registry.stop_serving().await;
    // The routes let go of the broker before it stops.
    dlq.set(None);
    handle
        .shutdown()
        .await
        .map_err(|e| CliError::runtime(format!("the broker did not stop cleanly: {e}")))?;
    registry.close().await?;
    tracing::info!("herald stopped");
    Ok(())
}

fn init_logging(level: Option<&str>) -> Result<(), CliError> {
    let filter = match level {
        Some(l) => {
            EnvFilter::try_new(l).map_err(|e| CliError::usage(format!("--log-level {l:?}: {e}")))?
        }
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    // Logs go to stderr; stdout carries the ready line and the banner.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
    Ok(())
}

/// The SDK's `EmbeddedTransport` keeps `topics/` and `groups/` like we do, but no
/// `broker/` (our catalog, always created first) and, once it has topics, a
/// `topics.meta`. Its partition logs look like ours, but its topics and consumer offsets
/// are kept differently, so `herald serve` would see logs without topics and break the
/// directory for the services that own it: refuse, and say what to do.
fn refuse_embedded_dir(dir: &Path) -> Result<(), CliError> {
    let ours = dir.join("broker").is_dir();
    let theirs = dir.join("topics.meta").exists()
        || (!ours && (dir.join("topics").is_dir() || dir.join("groups").is_dir()));
    if theirs {
        return Err(CliError::runtime(format!(
            "{} is an EmbeddedTransport data directory (the SDK's in-process log), which \
             herald serve cannot open: give herald serve its own --data-dir, and point the \
             services at it with KafkaTransport",
            dir.display()
        )));
    }
    Ok(())
}

/// Creates the data directory and takes an exclusive lock on it for the life of the
/// process (the OS releases it when the process ends, however it ends).
pub(crate) fn lock_data_dir(dir: &Path) -> Result<File, CliError> {
    refuse_embedded_dir(dir)?;
    fs::create_dir_all(dir).map_err(|e| {
        CliError::runtime(format!(
            "cannot create the data directory {}: {e}",
            dir.display()
        ))
    })?;
    let path = dir.join(LOCK_FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| CliError::runtime(format!("cannot open {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(CliError::runtime(format!(
            "the data directory {} is in use by another herald: stop it, or give this one \
             its own directory with --data-dir",
            dir.display()
        ))),
        Err(TryLockError::Error(e)) => Err(CliError::runtime(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

pub(crate) fn in_use(addr: SocketAddr, what: &str, flag: &str, source: std::io::Error) -> CliError {
    if source.kind() == std::io::ErrorKind::AddrInUse {
        CliError::runtime(format!(
            "cannot listen on {addr} ({what}): the address is in use: is another herald \
             running? use {flag} 127.0.0.1:0 or stop it"
        ))
    } else {
        CliError::runtime(format!("cannot listen on {addr} ({what}): {source}"))
    }
}

fn broker_error(e: BrokerError, config: &ServeConfig) -> CliError {
    match e {
        BrokerError::Bind { addr, source } => in_use(addr, "Kafka", "--kafka-listen", source),
        BrokerError::Config(m) => CliError::usage(format!("configuration: {m}")),
        BrokerError::Log {
            source: LogError::Locked(dir),
            ..
        } => CliError::runtime(format!(
            "{} is locked by another process: stop the other herald, or use another --data-dir",
            dir.display()
        )),
        e => CliError::runtime(format!(
            "cannot start the broker with data directory {}: {e}",
            config.broker.data_dir.display()
        )),
    }
}

/// Descriptors each open partition holds (log, index, time index, producer state,
/// directory), for the budget check.
const DESCRIPTORS_PER_PARTITION: u64 = 5;

/// Raises the soft limit of open files to the hard limit, as brokers do (the common
/// default of 1,024 holds about 200 partitions); the soft limit now, if known.
fn raise_descriptor_limit() -> Option<u64> {
    let before = rlimit::getrlimit(rlimit::Resource::NOFILE).ok();
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(now) => {
            tracing::info!(
                open_files = now,
                before = before.map_or(0, |(soft, _)| soft),
                "open-file limit (RLIMIT_NOFILE) raised to the hard limit"
            );
            Some(now)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-file limit (RLIMIT_NOFILE)");
            before.map(|(soft, _)| soft)
        }
    }
}

/// Warns when the partitions and `max_connections` need more descriptors than the limit.
fn check_descriptor_budget(limit: Option<u64>, broker: &Broker) {
    let Some(limit) = limit else { return };
    let partitions: u64 = broker
        .topics()
        .list()
        .iter()
        .map(|t| t.partition_count().max(0) as u64)
        .sum();
    let connections = broker.config().max_connections as u64;
    let needed = partitions * DESCRIPTORS_PER_PARTITION + connections + 256;
    tracing::info!(
        open_files = limit,
        partitions,
        max_connections = connections,
        needed,
        "descriptor budget: {DESCRIPTORS_PER_PARTITION} per partition, 1 per connection, 256 spare"
    );
    if needed > limit {
        tracing::warn!(
            open_files = limit,
            needed,
            "the open-file limit is below what {partitions} partitions and max_connections =              {connections} can need: raise the hard limit (ulimit -Hn, LimitNOFILE= in systemd)              or lower max_connections"
        );
    }
}

/// Prints the machine-readable ready line, then the banner for people.
fn announce(
    config: &ServeConfig,
    kafka_all: &[SocketAddr],
    http: SocketAddr,
    registry: SocketAddr,
    broker: &Broker,
) {
    let (host, port) = broker.advertised_address();
    let kafka = kafka_all[0];
    let more: Vec<(SocketAddr, bool, bool)> = kafka_all[1..]
        .iter()
        .zip(&config.more_kafka)
        .map(|(addr, &(tls, sasl, _))| (*addr, tls, sasl))
        .collect();
    let ready_more = if more.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = more.iter().map(|(a, _, _)| a.to_string()).collect();
        format!(" kafka_more={}", list.join(","))
    };
    let more_shown: String = more
        .iter()
        .map(|(addr, tls, sasl)| {
            let name = herald_broker::security_protocol(*tls, *sasl);
            format!("\x20 Kafka API   {name}://{addr}\n")
        })
        .collect();
    let on = config.tls_on;
    let scheme = |tls| if tls { "https" } else { "http" };
    let server = format!("{}://{http}", scheme(on.http));
    let registry_url = format!("{}://{registry}", scheme(on.registry));
    let protocol = herald_broker::security_protocol(on.kafka, on.kafka_sasl);
    let kafka_shown = if protocol == "PLAINTEXT" {
        kafka.to_string()
    } else {
        format!("{protocol}://{kafka}")
    };
    let flag = match (server == DEFAULT_SERVER, on.http) {
        (true, _) => String::new(),
        (false, false) => format!(" --server {server}"),
        (false, true) => format!(" --server {server} --ca-file CA.pem"),
    };
    let banner = format!(
        "herald ready kafka={kafka} http={http} registry={registry}{ready_more}\n\
         \n\
         Herald {version} is running.\n\
         \x20 Kafka API   {kafka_shown}  (clients use bootstrap.servers={host}:{port}{ssl})\n\
         {more_shown}\
         \x20 HTTP API    {server}  (/health /ready /metrics /api/v1)\n\
         \x20 Schemas     {registry_url}  (Confluent schema registry API; herald schemas)\n\
         \x20 data        {data}\n\
         \n\
         Try it from another terminal:\n\
         \x20 herald topics create demo{flag}\n\
         \x20 echo hello | herald produce demo{flag}\n\
         \x20 herald tail demo --from-beginning{flag}\n\
         \x20 kcat -b {host}:{port}{kcat_ssl} -t demo -C   (any Kafka client works)\n\
         \n\
         Stop with Ctrl-C.\n",
        version = env!("CARGO_PKG_VERSION"),
        data = config.broker.data_dir.display(),
        ssl = if on.kafka {
            " security.protocol=SSL"
        } else {
            ""
        },
        kcat_ssl = if on.kafka {
            " -X security.protocol=SSL -X ssl.ca.location=CA.pem"
        } else {
            ""
        },
    );
    // A listener that asks for credentials is not flagged.
    let unauthenticated: Vec<(&str, SocketAddr)> = [
        ("Kafka API", kafka, on.kafka_sasl),
        ("HTTP API", http, config.http_basic_auth),
        ("schema registry", registry, config.http_basic_auth),
    ]
    .into_iter()
    .chain(
        more.iter()
            .map(|(addr, _, sasl)| ("Kafka API", *addr, *sasl)),
    )
    .filter(|(_, _, authenticated)| !authenticated)
    .map(|(what, addr, _)| (what, addr))
    .collect();
    let exposed = exposed_listeners(&unauthenticated);
    let warning = if exposed.is_empty() {
        String::new()
    } else {
        let what = exposed.join(", ");
        tracing::warn!(listeners = %what, "listening beyond loopback without authentication");
        format!(
            "\nWARNING: {what} listen beyond loopback without authentication or TLS:\n\
             \x20 anyone who can reach them can read, write and delete every topic and schema.\n\
             \x20 Keep them on 127.0.0.1, or behind a firewall you control (docs/security.md).\n"
        )
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(banner.as_bytes());
    let _ = out.write_all(warning.as_bytes());
    let _ = out.flush();
}

/// The listeners bound to an address other hosts can reach, as "what (addr)".
fn exposed_listeners(listeners: &[(&str, SocketAddr)]) -> Vec<String> {
    listeners
        .iter()
        .filter(|(_, addr)| !addr.ip().is_loopback())
        .map(|(what, addr)| format!("{what} ({addr})"))
        .collect()
}

/// A SASL listener and HTTP Basic authentication check the data directory's users
/// (`herald users`), which AlterUserScramCredentials also manages. Any listener that
/// authenticates (SASL, client certificates, HTTP Basic) turns authorization on: every
/// request is checked against the ACLs (`herald acls`), and super users pass.
fn open_users(config: &mut ServeConfig) -> Result<(), CliError> {
    let users =
        UserStore::open(&config.broker.data_dir).map_err(|e| CliError::runtime(e.to_string()))?;
    config.broker.users = Some(users.clone());
    let client_certificates = config
        .tls
        .as_ref()
        .is_some_and(|t| t.client_ca.is_some() && config.tls_on.any_kafka_tls);
    if config.tls_on.any_kafka_sasl || config.http_basic_auth || client_certificates {
        let authorizer = Authorizer::open(&config.broker.data_dir, config.super_users.clone())
            .map_err(|e| CliError::runtime(e.to_string()))?;
        let acls = authorizer.describe(&Default::default()).len();
        tracing::info!(acls, super_users = %config.super_users.join(","), "authorization on: requests are checked against the ACLs");
        if acls == 0 && config.super_users.is_empty() {
            tracing::warn!(
                "authorization is on but there are no ACLs and no super users, so every                  request is denied: restart with --super-users NAME, or add ACLs (docs/security.md)"
            );
        }
        config.broker.authorizer = Some(authorizer.clone());
        config.http.authorizer = Some(authorizer);
    } else if !config.super_users.is_empty() {
        tracing::warn!(
            "--super-users has no effect: no listener authenticates, so authorization is off"
        );
    }
    if !config.tls_on.any_kafka_sasl && !config.http_basic_auth {
        return Ok(());
    }
    if users.is_empty() {
        tracing::warn!(
            "authentication is on but there are no users yet, so nobody can log in: stop \
             herald serve and add one with `herald users add NAME --data-dir {} --password-stdin`",
            config.broker.data_dir.display()
        );
    }
    if config.tls_on.any_kafka_sasl {
        let mechanisms: Vec<&str> = config.sasl_mechanisms.iter().map(|m| m.name()).collect();
        tracing::info!(users = users.list().len(), mechanisms = %mechanisms.join(","), "SASL on the Kafka listener");
        let sasl = SaslConfig {
            users: users.clone(),
            mechanisms: config.sasl_mechanisms.clone(),
        };
        if config.tls_on.kafka_sasl {
            config.broker.sasl = Some(sasl.clone());
        }
        config.sasl = Some(sasl);
    }
    if config.http_basic_auth {
        tracing::info!(
            users = users.list().len(),
            "HTTP Basic authentication on the HTTP API and the registry"
        );
        config.http.basic_auth = Some(users);
    }
    Ok(())
}

/// Reads the TLS files (a mistake stops `herald serve` before it binds anything) and
/// hands the configuration to the listeners that serve TLS.
fn load_tls(config: &mut ServeConfig) -> Result<Option<TlsServer>, CliError> {
    let Some(files) = config.tls.clone() else {
        return Ok(None);
    };
    let tls = TlsServer::load(files).map_err(|e| CliError::usage(format!("{e}")))?;
    tracing::info!(cert = %tls.files().cert.display(), client_certificates = tls.requires_client_certificates(),
        "TLS certificate loaded");
    if config.tls_on.kafka {
        config.broker.tls = Some(tls.clone());
    }
    config.loaded_tls = Some(tls.clone());
    if config.tls_on.http {
        config.http.tls = Some(tls.clone());
    }
    Ok(Some(tls))
}

/// Waits for SIGTERM or Ctrl-C; on SIGHUP re-reads the TLS certificate and key (new
/// connections get them, open ones keep theirs; a bad file keeps the current ones).
async fn wait_for_signal(tls: Option<&TlsServer>) -> Result<(), CliError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let watch = |kind, name| {
            signal(kind).map_err(|e| CliError::runtime(format!("cannot watch for {name}: {e}")))
        };
        let mut term = watch(SignalKind::terminate(), "SIGTERM")?;
        let mut hup = watch(SignalKind::hangup(), "SIGHUP")?;
        loop {
            tokio::select! {
                _ = term.recv() => {
                    tracing::info!("SIGTERM received");
                    break;
                }
                _ = hup.recv() => match tls.map(TlsServer::reload) {
                    None => tracing::info!("SIGHUP received; no TLS certificate to reload"),
                    Some(Ok(())) => tracing::info!("SIGHUP: TLS certificate and key reloaded"),
                    Some(Err(e)) => tracing::error!(error = %e,
                        "SIGHUP: TLS certificate not reloaded; the current one stays in use"),
                },
                r = tokio::signal::ctrl_c() => {
                    r.map_err(|e| CliError::runtime(format!("cannot watch for Ctrl-C: {e}")))?;
                    tracing::info!("Ctrl-C received");
                    break;
                }
            }
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| CliError::runtime(format!("cannot watch for Ctrl-C: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_beyond_loopback_are_named_for_the_warning() {
        let on = |a: &str| a.parse::<SocketAddr>().unwrap();
        assert!(
            exposed_listeners(&[
                ("Kafka API", on("127.0.0.1:9092")),
                ("HTTP API", on("[::1]:8080"))
            ])
            .is_empty()
        );
        assert_eq!(
            exposed_listeners(&[
                ("Kafka API", on("0.0.0.0:9092")),
                ("HTTP API", on("127.0.0.1:8080")),
                ("schema registry", on("192.0.2.7:8081")),
            ]),
            vec![
                "Kafka API (0.0.0.0:9092)",
                "schema registry (192.0.2.7:8081)"
            ]
        );
    }
}
