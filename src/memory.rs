// SPDX-License-Identifier: MPL-2.0
//! Memory that crosses as file descriptors.
//!
//! - The master's sink offers upstream a pool of **memfd** memory from [`MemfdAllocator`]
//!   (GStreamer 1.22 has no shm allocator): each block is a sealed memfd that cannot shrink or
//!   grow, mapped once by its maker and then sealed against any new writable mapping, so the
//!   slave can map it to read but never write into the master's memory.
//! - [`export`] says how fd-backed memory (memfd, dmabuf, any GstFdMemory) is sent: its fd, the
//!   part of it the memory covers, and its kind.
//! - [`import`] checks an fd from the peer (a memfd that cannot shrink, or a dmabuf, with the
//!   announced part inside it) and wraps it as read-only fd memory.

use std::os::fd::{AsFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use std::sync::LazyLock;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_allocators::prelude::*;
use rustix::fs::{MemfdFlags, SealFlags};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rsipcmemory",
        gst::DebugColorFlags::empty(),
        Some("rsipcpipeline fd memory"),
    )
});

/// What kind of fd a memory crosses as; the receiver wraps it as the same kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FdKind {
    /// A sealed memfd (or any file the receiver can check the size and seals of).
    Memfd = 1,
    Dmabuf = 2,
}

impl FdKind {
    pub fn from_u8(v: u8) -> Option<FdKind> {
        match v {
            1 => Some(FdKind::Memfd),
            2 => Some(FdKind::Dmabuf),
            _ => None,
        }
    }
}

/// `f_type` of the dma-buf pseudo-filesystem (linux/magic.h).
const DMA_BUF_MAGIC: u64 = 0x444d_4142;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MemoryError {
    #[error("an fd of the wrong kind ({0})")]
    WrongKind(&'static str),
    #[error("a memfd the sender could still shrink (no F_SEAL_SHRINK)")]
    NotSealed,
    #[error("bytes {offset}..{end} of an fd of {size} bytes")]
    OutOfBounds { offset: u64, end: u64, size: u64 },
    #[error("cannot inspect the fd: {0}")]
    Io(rustix::io::Errno),
    #[error("GStreamer refused the fd: {0}")]
    Wrap(String),
}

/// How a memory crosses as an fd: the fd, and the part of it the memory covers.
pub struct Exported<'a> {
    pub fd: BorrowedFd<'a>,
    pub kind: FdKind,
    pub offset: u64,
    pub size: u64,
}

/// The fd behind `mem`, when it has one that the peer will take (see [`check_kind`]): other
/// memory is copied into the frame instead of being refused on arrival.
pub fn export(mem: &gst::MemoryRef) -> Option<Exported<'_>> {
    let fd_mem = mem.downcast_memory_ref::<gst_allocators::FdMemory>()?;
    let kind = if mem.is_memory_type::<gst_allocators::DmaBufMemory>() {
        FdKind::Dmabuf
    } else {
        FdKind::Memfd
    };
    let raw = fd_mem.fd();
    if raw < 0 {
        return None;
    }
    // Lives as long as the memory, which the caller holds.
    let fd = unsafe { BorrowedFd::borrow_raw(raw) };
    check_kind(fd, kind).ok()?;
    Some(Exported {
        fd,
        kind,
        offset: mem.offset() as u64,
        size: mem.size() as u64,
    })
}

/// What an fd from the peer must be before it is mapped: a memfd (or other regular file)
/// sealed against shrinking, so the peer cannot pull pages from under our mapping (SIGBUS);
/// or a real dmabuf, which cannot change size. Anything else (a file the peer could
/// truncate, a socket, a device) is refused by the filesystem it lives on.
fn check_kind(fd: BorrowedFd<'_>, kind: FdKind) -> Result<(), MemoryError> {
    match kind {
        FdKind::Memfd => {
            let st = rustix::fs::fstat(fd).map_err(MemoryError::Io)?;
            if !rustix::fs::FileType::from_raw_mode(st.st_mode).is_file() {
                return Err(MemoryError::WrongKind("not a regular file or memfd"));
            }
            let seals = rustix::fs::fcntl_get_seals(fd).map_err(|_| MemoryError::NotSealed)?;
            if !seals.contains(SealFlags::SHRINK) {
                return Err(MemoryError::NotSealed);
            }
        }
        FdKind::Dmabuf => {
            let fs = rustix::fs::fstatfs(fd).map_err(MemoryError::Io)?;
            if fs.f_type as u64 != DMA_BUF_MAGIC {
                return Err(MemoryError::WrongKind("not a dmabuf"));
            }
        }
    }
    Ok(())
}

/// Checks a memfd from the peer that we map read-write (the shared ring): sealed against
/// shrinking, and exactly `len` bytes long.
pub(crate) fn check_memfd(fd: BorrowedFd<'_>, len: u64) -> Result<(), MemoryError> {
    check_kind(fd, FdKind::Memfd)?;
    let size = rustix::fs::fstat(fd).map_err(MemoryError::Io)?.st_size as u64;
    if size != len {
        return Err(MemoryError::OutOfBounds {
            offset: 0,
            end: len,
            size,
        });
    }
    Ok(())
}

/// Wraps an fd from the peer as read-only memory covering `offset..offset + size` of it,
/// once [`check_kind`] passed and the range lies inside it.
pub fn import(
    fd: OwnedFd,
    kind: FdKind,
    offset: u64,
    size: u64,
) -> Result<gst::Memory, MemoryError> {
    check_kind(fd.as_fd(), kind)?;
    let total = match kind {
        FdKind::Memfd => rustix::fs::fstat(&fd).map_err(MemoryError::Io)?.st_size as u64,
        FdKind::Dmabuf => {
            // A dmabuf tells its size by seeking to its end.
            let end =
                rustix::fs::seek(&fd, rustix::fs::SeekFrom::End(0)).map_err(MemoryError::Io)?;
            let _ = rustix::fs::seek(&fd, rustix::fs::SeekFrom::Start(0));
            end
        }
    };
    let end = offset.checked_add(size).filter(|e| *e <= total && size > 0);
    let Some(_) = end else {
        return Err(MemoryError::OutOfBounds {
            offset,
            end: offset.saturating_add(size),
            size: total,
        });
    };
    let raw = fd.into_raw_fd();
    let wrapped = unsafe {
        match kind {
            FdKind::Memfd => FD_ALLOCATOR.alloc_fd(
                raw,
                total as usize,
                gst_allocators::FdMemoryFlags::KEEP_MAPPED,
            ),
            FdKind::Dmabuf => DMABUF_ALLOCATOR.alloc_fd(
                raw,
                total as usize,
                gst_allocators::FdMemoryFlags::KEEP_MAPPED,
            ),
        }
    };
    let mut mem = match wrapped {
        Ok(m) => m,
        Err(e) => {
            // Not taken: ours to close.
            drop(unsafe { OwnedFd::from_raw_fd(raw) });
            return Err(MemoryError::Wrap(e.to_string()));
        }
    };
    {
        let m = mem.get_mut().unwrap();
        m.resize(offset as usize..(offset + size) as usize);
        // Elements that want to write get a copy (GStreamer copies read-only memory on a
        // writable map) instead of writing into the peer's memory.
        unsafe {
            (*m.as_mut_ptr()).mini_object.flags |= gst::ffi::GST_MINI_OBJECT_FLAG_LOCK_READONLY
        };
    }
    Ok(mem)
}

static FD_ALLOCATOR: LazyLock<gst_allocators::FdAllocator> =
    LazyLock::new(gst_allocators::FdAllocator::new);
static DMABUF_ALLOCATOR: LazyLock<gst_allocators::DmaBufAllocator> =
    LazyLock::new(gst_allocators::DmaBufAllocator::new);

// --- the memfd allocator ---------------------------------------------------------------

glib::wrapper! {
    /// Allocates each block as a sealed memfd: see the module documentation.
    pub struct MemfdAllocator(ObjectSubclass<imp::MemfdAllocator>)
        @extends gst_allocators::FdAllocator, gst::Allocator, gst::Object;
}

impl Default for MemfdAllocator {
    fn default() -> Self {
        glib::Object::new()
    }
}

/// Makes one memfd of `size` bytes sealed against changing size (the pool's memory, mapped
/// by the caller's GstFdMemory before the write seal closes the door on everybody else; the
/// shared ring).
pub(crate) fn sealed_memfd(name: &str, size: usize) -> rustix::io::Result<OwnedFd> {
    let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
    rustix::fs::ftruncate(&fd, size as u64)?;
    rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW)?;
    Ok(fd)
}

mod imp {
    use super::*;

    #[derive(Default)]
    pub struct MemfdAllocator;

    #[glib::object_subclass]
    impl ObjectSubclass for MemfdAllocator {
        const NAME: &'static str = "GstRsIpcMemfdAllocator";
        type Type = super::MemfdAllocator;
        type ParentType = gst_allocators::FdAllocator;
    }

    impl ObjectImpl for MemfdAllocator {}
    impl GstObjectImpl for MemfdAllocator {}

    unsafe impl AllocatorImpl for MemfdAllocator {
        unsafe fn alloc(
            &self,
            size: usize,
            params: &gst::AllocationParams,
        ) -> *mut gst::ffi::GstMemory {
            use gst::glib::translate::IntoGlibPtr;
            match self.make(size, params.prefix(), params.padding()) {
                Ok(mem) => mem.into_glib_ptr(),
                Err(e) => {
                    gst::error!(CAT, imp = self, "cannot allocate {size} bytes: {e}");
                    std::ptr::null_mut()
                }
            }
        }
    }

    impl MemfdAllocator {
        fn make(&self, size: usize, prefix: usize, padding: usize) -> Result<gst::Memory, String> {
            let total = prefix + size + padding;
            let fd = sealed_memfd("rsipcpipeline", total).map_err(|e| format!("memfd: {e}"))?;
            let raw = fd.into_raw_fd();
            let mut mem = unsafe {
                self.obj()
                    .alloc_fd(raw, total, gst_allocators::FdMemoryFlags::KEEP_MAPPED)
                    .inspect_err(|_| drop(OwnedFd::from_raw_fd(raw)))
                    .map_err(|e| e.to_string())?
            };
            let m = mem.get_mut().unwrap();
            // Mapped for writing now, for good; the seal below then forbids any new
            // writable mapping, the peer's included.
            drop(
                m.map_writable()
                    .map_err(|_| "cannot map the memfd".to_string())?,
            );
            let fd = unsafe { BorrowedFd::borrow_raw(raw) };
            if let Err(e) =
                rustix::fs::fcntl_add_seals(fd, SealFlags::FUTURE_WRITE | SealFlags::SEAL)
            {
                gst::warning!(
                    CAT,
                    imp = self,
                    "no write seal ({e}): the peer could write into it"
                );
            }
            m.resize(prefix..prefix + size);
            Ok(mem)
        }
    }

    impl gst_allocators::subclass::prelude::FdAllocatorImpl for MemfdAllocator {}
}

/// A pool of memfd memory for `caps` (raw video), and its allocator, for the ALLOCATION
/// query: with a video meta (and so upstream's own strides) when upstream can add one.
pub fn pool(caps: &gst::Caps, video_meta: bool) -> Option<(gst::BufferPool, MemfdAllocator, u32)> {
    let allocator = MemfdAllocator::default();
    let video = gst_video::VideoInfo::from_caps(caps).ok();
    let size = match &video {
        Some(info) => info.size() as u32,
        None => return None,
    };
    let pool: gst::BufferPool = gst_video::VideoBufferPool::new().upcast();
    let mut config = pool.config();
    config.set_params(Some(caps), size, 2, 0);
    config.set_allocator(Some(&allocator), None);
    if video_meta {
        config.add_option(gst_video::BUFFER_POOL_OPTION_VIDEO_META);
    }
    pool.set_config(config).ok()?;
    gst::debug!(
        CAT,
        "offering a memfd pool of {size}-byte buffers for {caps}"
    );
    Some((pool, allocator, size))
}

/// Copies of large buffers in plain memory into memfd memory of ours, which then crosses as
/// an fd: one copy, where the socket takes two (into the kernel and out of it). The pool
/// follows the size of the buffers and holds at most 64 MiB.
#[derive(Default)]
pub struct CopyPool(std::sync::Mutex<Option<(usize, gst::BufferPool)>>);

const COPY_POOL_BYTES: usize = 64 << 20;

impl CopyPool {
    /// `buffer` with its data in memfd memory, or `None` when every block of the pool is
    /// still with the peer (or memfds cannot be made): then it goes as it is.
    pub fn copy(&self, buffer: &gst::BufferRef) -> Option<gst::Buffer> {
        use gst::prelude::*;
        let size = buffer.size();
        let pool = {
            let mut slot = self.0.lock().unwrap();
            if slot.as_ref().is_none_or(|(s, _)| *s != size) {
                if let Some((_, old)) = slot.take() {
                    let _ = old.set_active(false);
                }
                let pool = gst::BufferPool::new();
                let mut config = pool.config();
                let max = (COPY_POOL_BYTES / size).clamp(2, 32) as u32;
                config.set_params(None, size as u32, 0, max);
                config.set_allocator(Some(&MemfdAllocator::default()), None);
                pool.set_config(config).ok()?;
                pool.set_active(true).ok()?;
                *slot = Some((size, pool));
            }
            slot.as_ref()?.1.clone()
        };
        let params =
            gst::BufferPoolAcquireParams::with_flags(gst::BufferPoolAcquireFlags::DONTWAIT);
        let mut copy = pool.acquire_buffer(Some(&params)).ok()?;
        {
            let out = copy.get_mut()?;
            let src = buffer.map_readable().ok()?;
            out.map_writable().ok()?.copy_from_slice(&src);
            buffer
                .copy_into(
                    out,
                    gst::BufferCopyFlags::FLAGS
                        | gst::BufferCopyFlags::TIMESTAMPS
                        | gst::BufferCopyFlags::META,
                    ..,
                )
                .ok()?;
        }
        Some(copy)
    }
}

impl Drop for CopyPool {
    fn drop(&mut self) {
        use gst::prelude::*;
        if let Some((_, pool)) = self.0.lock().unwrap().take() {
            let _ = pool.set_active(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gst::prelude::AllocatorExt;
    use std::os::fd::AsFd;

    fn sealed(size: u64) -> OwnedFd {
        sealed_memfd("rsipcpipeline", size as usize).unwrap()
    }

    #[test]
    fn fds_from_the_peer_are_checked_before_use() {
        gst::init().unwrap();
        let unsealed = rustix::fs::memfd_create("t", MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&unsealed, 4096).unwrap();
        assert_eq!(
            import(unsealed, FdKind::Memfd, 0, 16).unwrap_err(),
            MemoryError::NotSealed
        );
        assert!(matches!(
            import(sealed(4096), FdKind::Memfd, 4000, 200),
            Err(MemoryError::OutOfBounds { .. })
        ));
        assert!(matches!(
            import(sealed(4096), FdKind::Memfd, u64::MAX, 2),
            Err(MemoryError::OutOfBounds { .. })
        ));
        let dir =
            rustix::fs::open("/", rustix::fs::OFlags::RDONLY, rustix::fs::Mode::empty()).unwrap();
        assert!(matches!(
            import(dir, FdKind::Memfd, 0, 1),
            Err(MemoryError::WrongKind(_))
        ));
        let (a, _b) = crate::launcher::socketpair().unwrap();
        assert!(matches!(
            import(a, FdKind::Dmabuf, 0, 1),
            Err(MemoryError::WrongKind(_))
        ));
        // A file the peer could still truncate, passed off as a dmabuf to dodge the seals.
        let unsealed = rustix::fs::memfd_create("t", MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&unsealed, 4096).unwrap();
        assert!(matches!(
            import(unsealed, FdKind::Dmabuf, 0, 16),
            Err(MemoryError::WrongKind(_))
        ));

        let mem = import(sealed(4096), FdKind::Memfd, 100, 200).unwrap();
        assert_eq!((mem.offset(), mem.size()), (100, 200));
        assert!(mem.flags().contains(gst::MemoryFlags::READONLY));
        assert!(mem.map_readable().is_ok());
    }

    #[test]
    fn nobody_else_can_write_into_our_memory() {
        gst::init().unwrap();
        let allocator = MemfdAllocator::default();
        let mut mem = allocator.alloc(8192, None).unwrap();
        mem.get_mut()
            .unwrap()
            .map_writable()
            .unwrap()
            .as_mut_slice()[0] = 7;
        let exported = export(&mem).unwrap();
        assert_eq!(
            (exported.kind, exported.offset, exported.size),
            (FdKind::Memfd, 0, 8192)
        );
        let fd = exported.fd.as_fd();
        let map = |prot| unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                8192,
                prot,
                rustix::mm::MapFlags::SHARED,
                fd,
                0,
            )
        };
        // The peer can map it to read and sees our bytes, but can neither map it to write,
        // nor write to it, nor shrink it.
        let ro = map(rustix::mm::ProtFlags::READ).unwrap();
        assert_eq!(unsafe { *(ro as *const u8) }, 7);
        unsafe { rustix::mm::munmap(ro, 8192).unwrap() };
        assert!(map(rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE).is_err());
        assert!(rustix::io::pwrite(fd, &[1], 0).is_err());
        assert!(rustix::fs::ftruncate(fd, 0).is_err());
    }
}
