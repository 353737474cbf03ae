//! Runs a periodic task's passes under its lease (see [`crate::domain::leases`]): a pass
//! starts only when this node holds the lease, and the lease is renewed every third of its
//! duration while the pass runs. A pass whose renewal fails is stopped where it is: every
//! pass is safe to interrupt (a node may die at any point of one), and another node holds
//! the task now.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::domain::leases::Task;
use crate::domain::Services;
use crate::meta::LeaseToken;

pub struct TaskLease {
    services: Arc<Services>,
    task: Task,
    /// This node's name in the store.
    holder: String,
    lease: Duration,
    /// The current grant, while this node holds the lease.
    token: Option<LeaseToken>,
}

impl TaskLease {
    pub fn new(services: Arc<Services>, task: Task, holder: String, lease: Duration) -> Self {
        TaskLease {
            services,
            task,
            holder,
            lease,
            token: None,
        }
    }

    /// Runs `pass` if this node holds (or can take) the lease, renewing it meanwhile;
    /// `None` when another node holds it, or when the lease was lost mid-pass (the pass is
    /// then dropped).
    pub async fn run<T>(&mut self, pass: impl Future<Output = T>) -> Option<T> {
        if !self.hold().await {
            return None;
        }
        let period = self.lease / 3;
        let renewal = async {
            loop {
                tokio::time::sleep(period).await;
                if !self.hold().await {
                    return;
                }
            }
        };
        tokio::select! {
            done = pass => Some(done),
            () = renewal => {
                tracing::warn!(task = self.task.name(), "lost a task's lease mid-pass; stopped the pass");
                None
            }
        }
    }

    /// Gives the lease up, if held, so that another node takes the task over at once.
    pub async fn release(self) {
        let Some(token) = self.token else { return };
        if let Err(err) = self
            .services
            .release_task_lease(self.task, &self.holder, token)
            .await
        {
            tracing::warn!(task = self.task.name(), error = %err, "could not release a task's lease; it runs out by itself");
        }
    }

    /// Takes or renews the lease; whether this node holds it now.
    async fn hold(&mut self) -> bool {
        let held = match self
            .services
            .hold_task_lease(self.task, &self.holder, self.lease)
            .await
        {
            Ok(held) => held,
            Err(err) => {
                tracing::error!(task = self.task.name(), error = %err, "could not renew a task's lease");
                None
            }
        };
        match (self.token, held) {
            (None, Some(token)) => {
                tracing::info!(
                    task = self.task.name(),
                    lease.token = token.0,
                    "holds a task's lease: runs its passes"
                );
            }
            (Some(_), None) => {
                tracing::info!(
                    task = self.task.name(),
                    "another node holds a task's lease: leaves its passes to it"
                );
            }
            _ => {}
        }
        self.token = held;
        held.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::ObjectBlockStore;
    use crate::domain::Clock;
    use crate::meta::SqliteMetaStore;
    use crate::model::UnixSeconds;

    const LEASE: Duration = Duration::from_secs(3);

    /// Seconds since the test began, plus what the test added by hand.
    struct TestClock {
        start: tokio::time::Instant,
        added: std::sync::atomic::AtomicI64,
    }

    impl Clock for TestClock {
        fn now(&self) -> UnixSeconds {
            1_700_000_000
                + self.start.elapsed().as_secs() as i64
                + self.added.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    async fn services(dir: &tempfile::TempDir) -> (Arc<Services>, Arc<TestClock>) {
        let meta = SqliteMetaStore::open(&dir.path().join("meta.sqlite"))
            .await
            .expect("meta");
        let blocks = ObjectBlockStore::new(Arc::new(object_store::memory::InMemory::new()));
        let clock = Arc::new(TestClock {
            start: tokio::time::Instant::now(),
            added: Default::default(),
        });
        let services = Services::new(Arc::new(meta), Arc::new(blocks), clock.clone(), vec![0; 32]);
        (Arc::new(services), clock)
    }

    fn node(services: &Arc<Services>, name: &str) -> TaskLease {
        TaskLease::new(services.clone(), Task::Sweeper, name.to_owned(), LEASE)
    }

    #[tokio::test]
    async fn one_node_runs_the_passes_until_its_lease_runs_out_or_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let (services, clock) = services(&dir).await;
        let (mut a, mut b) = (node(&services, "a"), node(&services, "b"));
        assert_eq!(a.run(async { 1 }).await, Some(1));
        assert_eq!(b.run(async { 2 }).await, None, "a holds the lease");
        assert_eq!(a.run(async { 3 }).await, Some(3), "a renews it");

        let lapse = LEASE.as_secs() as i64 + 1;
        clock
            .added
            .fetch_add(lapse, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(b.run(async { 4 }).await, Some(4), "a's lease ran out");
        assert_eq!(a.run(async { 5 }).await, None, "b took it over");
        b.release().await;
        assert_eq!(a.run(async { 6 }).await, Some(6), "b gave it up");
    }

    #[tokio::test]
    async fn a_pass_longer_than_the_lease_keeps_it_renewed() {
        let dir = tempfile::tempdir().unwrap();
        let (services, _clock) = services(&dir).await;
        let mut a = node(&services, "a");
        let long =
            tokio::spawn(async move { a.run(tokio::time::sleep(LEASE * 2)).await.is_some() });
        // Real seconds: unrenewed, the lease would have run out by the third look.
        for _ in 0..3 {
            tokio::time::sleep(LEASE / 2).await;
            let mut b = node(&services, "b");
            assert_eq!(b.run(async {}).await, None, "a renews while its pass runs");
        }
        assert!(long.await.unwrap(), "a's pass ran to its end");
    }
}
