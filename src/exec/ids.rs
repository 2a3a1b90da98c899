//! Root's blocks of host ids (see [`IdPool`]): each running sandbox of root's whose manifest
//! maps no ids gets a block of its own, so no two sandboxes' processes are the same host user,
//! and no block holds ids /etc/subuid grants to a user.
//!
//! The blocks are leased in [`IDS_DIR`] ([`crate::lease`]), one file per block named by its
//! first host id. The launcher takes the lease before the clone, so the sandbox's init
//! inherits it: a block is in use exactly as long as a process of its sandbox may be. The
//! launcher gives it back as it ends; a SIGKILLed launcher's block is free again once its
//! sandbox is gone, and the next launch removes the file.

use nix::errno::Errno;

use crate::exec::error::{Op, StepFailure};
use crate::folder::Purpose;
use crate::lease::{Lease, Store};
use crate::plan::{IDS_DIR, IdPool, Plan, StepId, UserPlan};

/// The group of the store that holds the blocks' leases.
const BLOCKS: &str = "blocks";

/// The folder of the leases, as messages name it.
const ID_LEASES: Purpose = Purpose {
    name: "id lease folder",
    setting: None,
};

/// A leased block, given back when dropped.
pub struct Block {
    store: Store,
    lease: Option<Lease>,
}

impl Drop for Block {
    fn drop(&mut self) {
        if let (Some(lease), Ok(locked)) = (self.lease.take(), self.store.lock()) {
            let _ = lease.release(&locked);
        }
    }
}

impl Block {
    /// Keep the lease for the processes that hold it (a detached sandbox's supervisor), without
    /// giving the block back from this one.
    pub fn keep(mut self) {
        std::mem::forget(self.lease.take());
    }
}

/// Lease a block for the plan, when it leases its ids, and map the plan onto it.
pub fn lease(plan: &mut Plan) -> Result<Option<Block>, StepFailure> {
    let Some(user) = plan.user.as_mut().filter(|u| u.pool.is_some()) else {
        return Ok(None);
    };
    lease_in(Store::new(IDS_DIR, ID_LEASES), user).map(Some)
}

fn lease_in(store: Store, user: &mut UserPlan) -> Result<Block, StepFailure> {
    let pool: &IdPool = user.pool.as_ref().expect("a pool");
    let fail = |what: &str, errno| {
        StepFailure::new(
            StepId::User,
            Op::LeaseIds,
            format!("{what} {IDS_DIR}"),
            errno,
        )
    };
    let locked = store
        .lock()
        .map_err(|e| StepFailure::new(StepId::User, Op::LeaseIds, e.to_string(), e.errno()))?;
    let (live, stale) = locked
        .leases(BLOCKS)
        .map_err(|e| fail("reading the id leases in", e))?;
    for name in stale {
        locked
            .forget(BLOCKS, &name)
            .map_err(|e| fail("removing a stale id lease in", e))?;
    }
    let block = pool
        .blocks()
        .find(|block| !live.contains(&pool.lease_name(*block)))
        .ok_or_else(|| fail("leasing a block of host ids in", Errno::EUSERS))?;
    let lease = locked
        .take(BLOCKS, &pool.lease_name(block))
        .map_err(|e| fail("leasing a block of host ids in", e))?;
    drop(locked);
    user.lease(block);
    Ok(Block {
        store,
        lease: Some(lease),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{ID_BLOCK, IdMapping, MapWriter};

    fn user(pool: IdPool) -> UserPlan {
        UserPlan {
            uid_map: Vec::new(),
            gid_map: Vec::new(),
            writer: MapWriter::Direct,
            deny_setgroups: false,
            foreign: Default::default(),
            pool: Some(pool),
        }
    }

    fn pool() -> IdPool {
        IdPool {
            uid_base: Some(IdPool::REGION.0),
            gid_base: Some(IdPool::REGION.0),
            blocks: 10,
            free: vec![(1, 3), (5, 10)],
            reserved: false,
        }
    }

    fn first_uid(user: &UserPlan) -> u32 {
        user.uid_map[0].outside
    }

    #[test]
    fn each_sandbox_gets_its_own_block_given_back_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let store = || Store::new(dir.path(), ID_LEASES);
        let (mut a, mut b, mut c) = (user(pool()), user(pool()), user(pool()));
        let block = |n: u32| IdPool::REGION.0 + n * ID_BLOCK;
        let leased_a = lease_in(store(), &mut a).unwrap();
        let leased_b = lease_in(store(), &mut b).unwrap();
        assert_eq!((first_uid(&a), first_uid(&b)), (block(1), block(2)));
        assert_eq!(
            a.gid_map,
            [IdMapping {
                inside: 0,
                outside: block(1),
                count: ID_BLOCK
            }]
        );
        let leased_c = lease_in(store(), &mut c).unwrap();
        assert_eq!(
            first_uid(&c),
            block(5),
            "the blocks granted to users are skipped"
        );
        drop(leased_b);
        let mut d = user(pool());
        let _leased_d = lease_in(store(), &mut d).unwrap();
        assert_eq!(first_uid(&d), block(2), "a block given back is free again");
        drop((leased_a, leased_c));
        let files = std::fs::read_dir(dir.path().join(BLOCKS)).unwrap().count();
        assert_eq!(files, 1, "only d's lease is left");
    }

    #[test]
    fn a_killed_launchers_block_is_reclaimed_by_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = user(pool());
        let mut killed = lease_in(Store::new(dir.path(), ID_LEASES), &mut a).unwrap();
        // SIGKILL: the lease is not given back, and the kernel drops its lock.
        let lease = killed.lease.take();
        std::mem::forget(killed);
        drop(lease);
        let mut b = user(pool());
        let _leased = lease_in(Store::new(dir.path(), ID_LEASES), &mut b).unwrap();
        assert_eq!(first_uid(&b), first_uid(&a));
        let names: Vec<_> = std::fs::read_dir(dir.path().join(BLOCKS))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from(first_uid(&a).to_string())]);
    }

    #[test]
    fn a_full_pool_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let full = IdPool {
            free: vec![(0, 1)],
            ..pool()
        };
        let mut a = user(full.clone());
        let _leased = lease_in(Store::new(dir.path(), ID_LEASES), &mut a).unwrap();
        let refused = lease_in(Store::new(dir.path(), ID_LEASES), &mut user(full))
            .err()
            .unwrap();
        assert_eq!(refused.errno(), Errno::EUSERS);
    }
}
