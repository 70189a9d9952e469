//! Dialing: one connect (tokio-postgres dialing the hosts, or a custom connector's stream),
//! the connection task, the setup SQL, the budget check, the server's address.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio_postgres::config::TargetSessionAttrs;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::budget::Budget;
use crate::cache::StatementCache;
use crate::connection::PgConnection;
use crate::error::{server_went_away, PgError};
use crate::manager::{PgManager, PgTls};
use crate::stream::Connector;
use crate::watch::Watch;

/// How long a closed connection's background task may take to say goodbye to the server.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

impl<T: PgTls> PgManager<T> {
    /// One connect with this configuration: tokio-postgres tries the hosts, checks the session
    /// attributes, and the connection task is spawned.
    pub(crate) async fn connect_with(
        &self,
        config: &tokio_postgres::Config,
    ) -> Result<PgConnection, PgError> {
        if let Some(connector) = &self.s.connector {
            return self.connect_custom(connector, config).await;
        }
        let (client, connection) = config
            .connect(self.tls.clone())
            .await
            .map_err(|e| PgError::connect(self.targets(), e))?;
        self.finish(client, connection, config).await
    }

    /// A connect over the stream the custom connector supplies.
    async fn connect_custom(
        &self,
        connector: &Connector,
        config: &tokio_postgres::Config,
    ) -> Result<PgConnection, PgError> {
        if self.s.ssl.mode.requires_tls() {
            return Err(PgError::Config(format!(
                "sslmode={} with a custom connector: the Postgres protocol runs over the connector's stream without TLS; encrypt in the connector or the tunnel and set sslmode=disable",
                self.s.ssl.mode
            )));
        }
        let target = "the custom connector".to_string();
        let dial = async {
            let stream = connector(config).await.map_err(|source| PgError::Io {
                target: target.clone(),
                source,
            })?;
            stream
                .tune(self.s.keepalives, self.s.tcp_user_timeout)
                .map_err(|source| PgError::Io {
                    target: target.clone(),
                    source,
                })?;
            config
                .connect_raw(stream, NoTls)
                .await
                .map_err(|e| PgError::connect(target.clone(), e))
        };
        let (client, connection) = match self.s.connect_timeout {
            Some(limit) => tokio::time::timeout(limit, dial)
                .await
                .map_err(|_| PgError::TimedOut { what: "connect" })??,
            None => dial.await?,
        };
        self.finish(client, connection, config).await
    }

    /// The rest of every connect, however its stream was made: the connection task, the
    /// setup SQL, the budget check, the server's address.
    async fn finish<C>(
        &self,
        client: Client,
        connection: C,
        config: &tokio_postgres::Config,
    ) -> Result<PgConnection, PgError>
    where
        C: Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
    {
        let (closing, closed) = oneshot::channel::<()>();
        let health = Arc::clone(&self.s.health);
        let born = health.suspect_epoch.load(Ordering::Acquire);
        let seq = health.next_seq.fetch_add(1, Ordering::AcqRel);
        let task_health = Arc::clone(&health);
        tokio::spawn(async move {
            tokio::pin!(connection);
            tokio::select! {
                result = &mut connection => {
                    if let Err(e) = result {
                        if server_went_away(&e) {
                            task_health.suspect_epoch.fetch_add(1, Ordering::AcqRel);
                            tracing::warn!(target: "pool_postgres", error = %PgError::from(e), "a backend went away; the connections opened before are checked before their next use");
                        } else {
                            tracing::debug!(target: "pool_postgres", error = %PgError::from(e), "connection ended with an error");
                        }
                    }
                }
                _ = closed => {
                    let _ = tokio::time::timeout(CLOSE_GRACE, connection).await;
                }
            }
        });
        if let Some(sql) = &self.s.setup_sql {
            client.batch_execute(sql).await?;
        }
        if let Some(floor) = self.s.budget_floor {
            if !self.s.health.budget_read.swap(true, Ordering::AcqRel) {
                check_budget(&client, floor).await;
            }
        }
        let server: Arc<str> = if self
            .s
            .config
            .get_hosts()
            .len()
            .max(self.s.config.get_hostaddrs().len())
            > 1
        {
            server_of(&client).await?.into()
        } else {
            Arc::from("")
        };
        Ok(PgConnection {
            client,
            checked_epoch: born,
            watch: Watch {
                seq,
                server,
                broken: AtomicBool::new(false),
                read_write: config.get_target_session_attrs() == TargetSessionAttrs::ReadWrite,
                health,
                statements: Mutex::new(StatementCache::new(self.s.statement_cache)),
            },
            _closing: closing,
        })
    }
}

/// Reads the budget on a new connection (the pool's first) and warns when the rest of the
/// floor does not fit.
async fn check_budget(client: &Client, floor: usize) {
    match Budget::read(client).await {
        Ok(budget) => {
            // This connection is already open and counted.
            let more = floor.saturating_sub(1);
            if more > budget.headroom() as usize {
                tracing::warn!(
                    target: "pool_postgres",
                    floor,
                    headroom = budget.headroom(),
                    limit = budget.binding_limit(),
                    %budget,
                    "the pool's floor does not fit in the connection budget: it will hold fewer idle connections than min_size, and other clients may be refused"
                );
            } else {
                tracing::debug!(target: "pool_postgres", floor, %budget, "connection budget");
            }
        }
        Err(e) => {
            tracing::debug!(target: "pool_postgres", error = %e, "could not read the connection budget")
        }
    }
}

/// The server a connection is on, as it reports itself (several hosts in the string).
async fn server_of(client: &Client) -> Result<String, PgError> {
    let rows = client
        .simple_query("SELECT inet_server_addr()::text, inet_server_port()::text")
        .await?;
    let row = rows.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => Some(r),
        _ => None,
    });
    Ok(match row {
        Some(r) => format!(
            "{}:{}",
            r.get(0).unwrap_or("local"),
            r.get(1).unwrap_or("?")
        ),
        None => String::new(),
    })
}
