/* lockfile.h: an exclusive lock, held for a whole run, on an output that two
 * processes must not write at once (lora-sweep's results file), so that a
 * second writer is refused at its start instead of racing the first.
 *
 *   lockfile *lk;
 *   if (lockfile_acquire(&lk, "RESULTS.h5", "lora-sweep")) { ...print lk_errmsg(), exit 1... }
 *   ...write RESULTS.h5, as often as needed...
 *   lockfile_release(lk);
 *
 * The lock is an advisory flock(LOCK_EX | LOCK_NB) on a file next to the
 * output, PATH.lock, not on PATH itself: PATH is replaced by a rename at every
 * atomic commit (h5io.h), which would leave the lock on the old file, and
 * HDF5's own file locking (HDF5_USE_FILE_LOCKING) takes a shared lock on PATH
 * when the same process reads it, which an exclusive lock of ours would block.
 * HDF5's locks and this one are independent: turning HDF5's off changes
 * nothing here. The holder writes a line naming itself into PATH.lock ("pid
 * PID on HOST since TIME, WHO"), which a refused process quotes.
 *
 * The kernel drops the lock when the holder exits or is killed, so a killed run
 * leaves at most an unlocked PATH.lock, which the next run takes over.
 * lockfile_release removes PATH.lock while still holding it; lockfile_acquire
 * checks, once it holds the lock, that the file it locked is still the one at
 * PATH.lock (else it tries again), so the removal never lets two holders in.
 * On a network file system the lock works where flock does (NFS emulates it
 * with POSIX locks; Lustre needs the flock mount option); where locks are not
 * supported at all, acquiring fails with LK_ERR_UNSUPPORTED saying so. */
#ifndef LK_LOCKFILE_H
#define LK_LOCKFILE_H

#include "status.h"

typedef struct lockfile lockfile;

/* Takes the lock of output path (PATH.lock, created if missing) without
 * waiting. who (e.g. the tool's name) goes into the holder's line. Fails with
 * LK_ERR_IO "PATH is being written by another process (HOLDER; lock file
 * PATH.lock)" when another process (or another lockfile of this one) holds it,
 * LK_ERR_UNSUPPORTED when the file system has no locks, LK_ERR_IO when
 * PATH.lock cannot be created, LK_ERR_ARG when the path is too long. */
lk_status lockfile_acquire(lockfile **out, const char *path, const char *who);

/* Removes PATH.lock and drops the lock; NULL is fine. */
void lockfile_release(lockfile *l);

#endif
