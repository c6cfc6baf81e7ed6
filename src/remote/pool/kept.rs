//! Connections that keep a write handle open for one writer
//! (`Remote::write_kept`): the pool parks such a connection for that
//! writer's next call, closes its handle at `close_writer`, and takes it
//! back early (closing the handle, keeping a failed close for the writer)
//! when no other data connection can be had. It knows no protocol: the
//! handle is the connection's (`Connection::write_kept`, `close_kept`).

use super::{discard, Connection, Connector, Pool, Pooled};
use crate::remote::{Result, WriterId};
use crate::stats;
use crate::sync::lock;

impl<C: Connector> Pool<C> {
    /// Runs `op` for `writer` on a connection parked for it, else on any
    /// data connection; parks the connection afterwards if it keeps a
    /// handle open. Never retried (writes are not).
    pub(super) fn run_kept(
        &self,
        writer: WriterId,
        op: impl FnOnce(&mut C::Conn) -> Result<bool>,
    ) -> Result<()> {
        let parked = lock(&self.parked).get_mut(&writer).and_then(Vec::pop);
        let mut pooled = match parked {
            Some(pooled) => pooled,
            None => self.acquire_bulk(None)?,
        };
        let result = op(&mut pooled.conn);
        match result {
            Ok(true) => {
                // Parked under the bulk lock a waiting call holds when it
                // looks for parked ones, then woken: a call waiting for a
                // data connection can take this one back
                // (`reclaim_parked`), and must not sleep until its deadline
                // while every connection is parked.
                let bulk = lock(&self.bulk);
                lock(&self.parked).entry(writer).or_default().push(pooled);
                drop(bulk);
                self.bulk_freed.notify_one();
                Ok(())
            }
            Ok(false) => {
                self.give_back(pooled, false);
                Ok(())
            }
            Err(e) => {
                let mut broken = e.breaks_connection();
                if broken {
                    tracing::info!("dropping a data connection: {e}");
                    self.note_failure(&e);
                } else if pooled.conn.close_kept().is_err() {
                    // The write already failed: that is what the writer
                    // is told.
                    broken = true;
                }
                self.give_back(pooled, broken);
                Err(e)
            }
        }
    }

    /// A data connection back to the idle ones, or closed if `broken` or
    /// of a past epoch.
    pub(super) fn give_back(&self, pooled: Pooled<C::Conn>, broken: bool) {
        let mut bulk = lock(&self.bulk);
        if broken || !self.is_current(&pooled) {
            bulk.open -= 1;
            stats::get().conn_closed(broken);
            discard(pooled);
        } else {
            bulk.idle.push(pooled);
        }
        drop(bulk);
        self.bulk_freed.notify_one();
    }

    /// Closes the kept handle of a parked connection; a failure is kept
    /// for its writer. Returns the connection if it can serve on.
    pub(super) fn unpark(
        &self,
        writer: WriterId,
        mut pooled: Pooled<C::Conn>,
    ) -> Option<Pooled<C::Conn>> {
        match pooled.conn.close_kept() {
            Ok(()) => Some(pooled),
            Err(e) => {
                let broken = e.breaks_connection();
                if broken {
                    self.note_failure(&e);
                }
                lock(&self.kept_errors).entry(writer).or_insert(e);
                if broken {
                    self.give_back(pooled, true);
                    None
                } else {
                    Some(pooled)
                }
            }
        }
    }

    /// Takes back a parked connection for other work (none other can be
    /// had), closing its handle first.
    pub(super) fn reclaim_parked(&self) -> Option<Pooled<C::Conn>> {
        let (writer, pooled) = {
            let mut parked = lock(&self.parked);
            let writer = *parked.iter().find(|(_, conns)| !conns.is_empty())?.0;
            let conns = parked.get_mut(&writer)?;
            let pooled = conns.pop()?;
            if conns.is_empty() {
                parked.remove(&writer);
            }
            (writer, pooled)
        };
        self.unpark(writer, pooled)
    }

    /// Closes every handle kept for `writer`; the first failure, including
    /// one kept from a handle closed earlier.
    pub(super) fn close_parked(&self, writer: WriterId) -> Result<()> {
        let conns = lock(&self.parked).remove(&writer).unwrap_or_default();
        for pooled in conns {
            if let Some(pooled) = self.unpark(writer, pooled) {
                self.give_back(pooled, false);
            }
        }
        match lock(&self.kept_errors).remove(&writer) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
