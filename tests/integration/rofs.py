"""A pass-through FUSE filesystem over a folder that turns read-only and writable again under
running processes: while the file SWITCH exists, every operation that would change something
fails with EROFS ("Read-only file system"), as a network or cloud volume does when its server
turns it read-only; without it, everything passes through.

The tests need it because Linux refuses `mount -o remount,ro` of a local filesystem (tmpfs,
ext4) while a process holds a file on it open for writing, as the learner holds replay.db, and
the kernel's own forced read-only remount after an I/O error (ext4 errors=remount-ro) lasts
until the filesystem is unmounted, so neither can turn a running learner's store read-only and
back. Files opened before the switch stay open and fail their writes, as on such a volume.

Usage: python3 rofs.py BACKING MOUNTPOINT SWITCH   (stays in the foreground; SIGTERM unmounts)
"""
import errno
import os
import sys

from fusepy import FUSE, FuseOSError, Operations

STAT_FIELDS = ("st_mode", "st_ino", "st_dev", "st_nlink", "st_uid", "st_gid", "st_size",
               "st_blocks", "st_blksize")


class Switchable(Operations):
    use_ns = True

    def __init__(self, root, switch):
        self.root = os.path.realpath(root)
        self.switch = switch

    def _path(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def _writable(self):
        if os.path.exists(self.switch):
            raise FuseOSError(errno.EROFS)

    @staticmethod
    def _call(fn, *args):
        try:
            return fn(*args)
        except OSError as e:
            raise FuseOSError(e.errno) from None

    # ---- reads pass through whatever the switch says
    def getattr(self, path, fh=None):
        st = self._call(os.fstat, fh) if fh is not None else self._call(os.lstat, self._path(path))
        attrs = {k: getattr(st, k) for k in STAT_FIELDS}
        attrs.update(st_atime=st.st_atime_ns, st_mtime=st.st_mtime_ns, st_ctime=st.st_ctime_ns)
        return attrs

    def access(self, path, amode):
        if amode & os.W_OK and os.path.exists(self.switch):
            raise FuseOSError(errno.EROFS)
        if not os.access(self._path(path), amode):
            raise FuseOSError(errno.EACCES)

    def readdir(self, path, fh):
        return [".", ".."] + self._call(os.listdir, self._path(path))

    def readlink(self, path):
        return self._call(os.readlink, self._path(path))

    def statfs(self, path):
        sv = self._call(os.statvfs, self._path(path))
        out = {k: getattr(sv, k) for k in ("f_bavail", "f_bfree", "f_blocks", "f_bsize",
                                           "f_favail", "f_ffree", "f_files", "f_flag",
                                           "f_frsize", "f_namemax")}
        if os.path.exists(self.switch):
            out["f_flag"] |= os.ST_RDONLY
        return out

    def open(self, path, flags):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC):
            self._writable()
        return self._call(os.open, self._path(path), flags)

    def read(self, path, size, offset, fh):
        return self._call(os.pread, fh, size, offset)

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        os.close(fh)

    # ---- everything that changes something asks the switch first
    def create(self, path, mode, fi=None):
        self._writable()
        # Read-write whatever the caller asked for: the kernel reads through this handle too,
        # to fill the pages of a file the caller maps (SQLite maps its -shm file).
        return self._call(os.open, self._path(path), os.O_RDWR | os.O_CREAT, mode)

    def write(self, path, data, offset, fh):
        self._writable()
        return self._call(os.pwrite, fh, data, offset)

    def truncate(self, path, length, fh=None):
        self._writable()
        if fh is not None:
            self._call(os.ftruncate, fh, length)
        else:
            self._call(os.truncate, self._path(path), length)

    def fsync(self, path, datasync, fh):
        self._writable()
        self._call(os.fdatasync if datasync else os.fsync, fh)

    def mkdir(self, path, mode):
        self._writable()
        self._call(os.mkdir, self._path(path), mode)

    def rmdir(self, path):
        self._writable()
        self._call(os.rmdir, self._path(path))

    def unlink(self, path):
        self._writable()
        self._call(os.unlink, self._path(path))

    def rename(self, old, new):
        self._writable()
        self._call(os.rename, self._path(old), self._path(new))

    def chmod(self, path, mode):
        self._writable()
        self._call(os.chmod, self._path(path), mode)

    def chown(self, path, uid, gid):
        self._writable()
        self._call(os.chown, self._path(path), uid, gid)

    def utimens(self, path, times=None):
        self._writable()
        if times:
            self._call(os.utime, self._path(path), ns=times)
        else:
            self._call(os.utime, self._path(path))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__.strip().splitlines()[-1])
    backing, mountpoint, switch = sys.argv[1:]
    FUSE(Switchable(backing, switch), mountpoint, foreground=True, fsname="rofs")
