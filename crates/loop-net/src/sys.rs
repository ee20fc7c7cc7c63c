//! The C library's resolver (`getaddrinfo`, `getnameinfo`, `gai_strerror`): the FFI of
//! loop-net, the one module of the crate that may use `unsafe`.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::io;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};

/// One `getaddrinfo` result: family, socket type, protocol, canonical name, address.
pub(crate) type RawAddrInfo = (i32, i32, i32, Option<String>, SocketAddr);

/// `getaddrinfo(host, port, hints)`; `what` names the call in errors.
pub(crate) fn getaddrinfo(
    c_host: Option<&CStr>,
    c_port: Option<&CStr>,
    hints: [i32; 4],
    what: &str,
) -> io::Result<Vec<RawAddrInfo>> {
    let [family, socktype, protocol, flags] = hints;
    // SAFETY: an all-zero addrinfo is a valid "no hints" value; the fields we set are plain ints.
    let mut h: libc::addrinfo = unsafe { std::mem::zeroed() };
    h.ai_family = family;
    h.ai_socktype = socktype;
    h.ai_protocol = protocol;
    h.ai_flags = flags;
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: host and port are NUL-terminated strings or null, `h` is a valid hints struct and
    // `res` receives a list that we free with freeaddrinfo below.
    let rc = unsafe {
        libc::getaddrinfo(
            c_host.map_or(std::ptr::null(), CStr::as_ptr),
            c_port.map_or(std::ptr::null(), CStr::as_ptr),
            &h,
            &mut res,
        )
    };
    if rc != 0 {
        return Err(gai_error(rc, what));
    }
    let mut out = Vec::new();
    let mut cur = res;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getaddrinfo returned, not yet freed.
        let ai = unsafe { &*cur };
        if let Some(addr) = sockaddr_to_std(ai.ai_addr, ai.ai_addrlen) {
            let canonname = if ai.ai_canonname.is_null() {
                None
            } else {
                // SAFETY: a non-null ai_canonname is a NUL-terminated string owned by the list.
                Some(
                    unsafe { CStr::from_ptr(ai.ai_canonname) }
                        .to_string_lossy()
                        .into_owned(),
                )
            };
            out.push((
                ai.ai_family,
                ai.ai_socktype,
                ai.ai_protocol,
                canonname,
                addr,
            ));
        }
        cur = ai.ai_next;
    }
    // SAFETY: `res` came from a successful getaddrinfo and is freed exactly once.
    unsafe { libc::freeaddrinfo(res) };
    Ok(out)
}

/// `getnameinfo(addr, flags)`: `(host, service)`.
pub(crate) fn getnameinfo(addr: &SocketAddr, flags: i32) -> io::Result<(String, String)> {
    let mut host = [0 as libc::c_char; 1025];
    let mut serv = [0 as libc::c_char; 32];
    let rc = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: all-zero sockaddr_in is valid; we fill family, port and address.
            let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            // BSD-derived systems carry the length in the address; their getnameinfo checks it.
            #[cfg(any(
                target_vendor = "apple",
                target_os = "freebsd",
                target_os = "netbsd",
                target_os = "openbsd",
                target_os = "dragonfly",
            ))]
            {
                sin.sin_len = std::mem::size_of::<libc::sockaddr_in>() as u8;
            }
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            // SAFETY: the sockaddr and both output buffers are valid for the lengths given.
            unsafe {
                libc::getnameinfo(
                    &sin as *const _ as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                    host.as_mut_ptr(),
                    // socklen_t on Linux and Apple, size_t on FreeBSD.
                    host.len() as _,
                    serv.as_mut_ptr(),
                    serv.len() as _,
                    flags,
                )
            }
        }
        SocketAddr::V6(a) => {
            // SAFETY: all-zero sockaddr_in6 is valid; we fill every meaningful field.
            let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            #[cfg(any(
                target_vendor = "apple",
                target_os = "freebsd",
                target_os = "netbsd",
                target_os = "openbsd",
                target_os = "dragonfly",
            ))]
            {
                sin6.sin6_len = std::mem::size_of::<libc::sockaddr_in6>() as u8;
            }
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_scope_id = a.scope_id();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            // SAFETY: the sockaddr and both output buffers are valid for the lengths given.
            unsafe {
                libc::getnameinfo(
                    &sin6 as *const _ as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                    host.as_mut_ptr(),
                    // socklen_t on Linux and Apple, size_t on FreeBSD.
                    host.len() as _,
                    serv.as_mut_ptr(),
                    serv.len() as _,
                    flags,
                )
            }
        }
    };
    if rc != 0 {
        return Err(gai_error(rc, &format!("getnameinfo({addr})")));
    }
    // SAFETY: on success both buffers hold NUL-terminated strings.
    let (h, s) = unsafe { (CStr::from_ptr(host.as_ptr()), CStr::from_ptr(serv.as_ptr())) };
    Ok((
        h.to_string_lossy().into_owned(),
        s.to_string_lossy().into_owned(),
    ))
}

fn gai_error(code: i32, what: &str) -> io::Error {
    if code == libc::EAI_SYSTEM {
        let e = io::Error::last_os_error();
        return io::Error::new(e.kind(), format!("{what}: {e}"));
    }
    // SAFETY: gai_strerror returns a pointer to a static, NUL-terminated message for any code.
    let msg = unsafe { CStr::from_ptr(libc::gai_strerror(code)) }
        .to_string_lossy()
        .into_owned();
    let kind = match code {
        libc::EAI_NONAME | libc::EAI_SERVICE => io::ErrorKind::NotFound,
        // FreeBSD and DragonFly dropped EAI_NODATA (folded into EAI_NONAME).
        #[cfg(not(any(target_os = "freebsd", target_os = "dragonfly")))]
        libc::EAI_NODATA => io::ErrorKind::NotFound,
        libc::EAI_AGAIN => io::ErrorKind::WouldBlock,
        libc::EAI_BADFLAGS | libc::EAI_FAMILY | libc::EAI_SOCKTYPE => io::ErrorKind::InvalidInput,
        libc::EAI_MEMORY => io::ErrorKind::OutOfMemory,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("{what}: {msg}"))
}

/// Converts a C `sockaddr` of `len` bytes to an IP address.
fn sockaddr_to_std(sa: *const libc::sockaddr, len: libc::socklen_t) -> Option<SocketAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: `sa` points to a sockaddr of `len` bytes filled in by getaddrinfo; the family
    // field is read first and the structure is only reinterpreted as the type of that family
    // when `len` is large enough for it.
    unsafe {
        match i32::from((*sa).sa_family) {
            libc::AF_INET if len as usize >= std::mem::size_of::<libc::sockaddr_in>() => {
                let sin = &*(sa as *const libc::sockaddr_in);
                let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                Some(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 if len as usize >= std::mem::size_of::<libc::sockaddr_in6>() => {
                let sin6 = &*(sa as *const libc::sockaddr_in6);
                let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                Some(SocketAddr::V6(SocketAddrV6::new(
                    ip,
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

/// Flags of every socket send: `MSG_NOSIGNAL` where it exists (a peer that went away gives
/// `EPIPE`, not SIGPIPE). Apple has no such flag: [`socket`] and [`accept`] set
/// `SO_NOSIGPIPE` on its sockets instead.
#[cfg(not(target_vendor = "apple"))]
pub(crate) const SEND_NOSIGNAL: rustix::net::SendFlags = rustix::net::SendFlags::NOSIGNAL;
/// Flags of every socket send (Apple: none; its sockets have `SO_NOSIGPIPE`).
#[cfg(target_vendor = "apple")]
pub(crate) const SEND_NOSIGNAL: rustix::net::SendFlags = rustix::net::SendFlags::empty();

/// A new socket, non-blocking and close-on-exec: atomically where the platform can
/// (`SOCK_NONBLOCK | SOCK_CLOEXEC`), set right after creation on Apple, which also gets
/// `SO_NOSIGPIPE` there.
pub(crate) fn socket(
    family: rustix::net::AddressFamily,
    ty: rustix::net::SocketType,
    protocol: Option<rustix::net::Protocol>,
) -> io::Result<std::os::fd::OwnedFd> {
    #[cfg(not(target_vendor = "apple"))]
    {
        use rustix::net::SocketFlags;
        Ok(rustix::net::socket_with(
            family,
            ty,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            protocol,
        )?)
    }
    #[cfg(target_vendor = "apple")]
    {
        let fd = rustix::net::socket(family, ty, protocol)?;
        apple_socket_flags(&fd)?;
        Ok(fd)
    }
}

/// Accepts a connection on `listener`: non-blocking and close-on-exec (`accept4` where it
/// exists; on Apple, whose accept takes no flags, set right after).
pub(crate) fn accept(
    listener: std::os::fd::BorrowedFd<'_>,
) -> rustix::io::Result<(std::os::fd::OwnedFd, Option<rustix::net::SocketAddrAny>)> {
    #[cfg(not(target_vendor = "apple"))]
    {
        use rustix::net::SocketFlags;
        rustix::net::acceptfrom_with(listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC)
    }
    #[cfg(target_vendor = "apple")]
    {
        let (fd, addr) = rustix::net::acceptfrom(listener)?;
        apple_socket_flags(&fd)?;
        Ok((fd, addr))
    }
}

/// Apple: non-blocking, close-on-exec and `SO_NOSIGPIPE`, after the fact.
#[cfg(target_vendor = "apple")]
fn apple_socket_flags(fd: &std::os::fd::OwnedFd) -> rustix::io::Result<()> {
    rustix::io::ioctl_fionbio(fd, true)?;
    rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC)?;
    rustix::net::sockopt::set_socket_nosigpipe(fd, true)
}

/// The address family of socket `fd`: `SO_DOMAIN` on Linux, the family of its own address
/// (`getsockname`) where that option does not exist.
pub(crate) fn socket_family(
    fd: std::os::fd::BorrowedFd<'_>,
) -> rustix::io::Result<rustix::net::AddressFamily> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        rustix::net::sockopt::socket_domain(fd)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        Ok(rustix::net::getsockname(fd)?.address_family())
    }
}
