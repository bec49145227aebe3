//! A minimal writer of the "newc" cpio format the Linux kernel unpacks as an initramfs.
//! Written here so the lab needs no cpio program.

/// One entry of the archive.
pub enum CpioEntry<'a> {
    Directory {
        path: &'a str,
        mode: u32,
    },
    File {
        path: &'a str,
        mode: u32,
        data: &'a [u8],
    },
    CharDevice {
        path: &'a str,
        mode: u32,
        major: u32,
        minor: u32,
    },
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFCHR: u32 = 0o020000;

pub fn newc_archive(entries: &[CpioEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    for (inode, entry) in (1u32..).zip(entries) {
        let (path, mode, data, rdev) = match *entry {
            CpioEntry::Directory { path, mode } => (path, S_IFDIR | mode, &[][..], (0, 0)),
            CpioEntry::File { path, mode, data } => (path, S_IFREG | mode, data, (0, 0)),
            CpioEntry::CharDevice {
                path,
                mode,
                major,
                minor,
            } => (path, S_IFCHR | mode, &[][..], (major, minor)),
        };
        let links = if mode & S_IFDIR != 0 { 2 } else { 1 };
        push_entry(&mut out, inode, mode, links, path, data, rdev);
    }
    push_entry(&mut out, 0, 0, 1, "TRAILER!!!", &[], (0, 0));
    out
}

fn push_entry(
    out: &mut Vec<u8>,
    inode: u32,
    mode: u32,
    links: u32,
    path: &str,
    data: &[u8],
    (rdev_major, rdev_minor): (u32, u32),
) {
    let name_size = path.len() + 1;
    let fields = [
        inode,
        mode,
        0, // uid
        0, // gid
        links,
        0, // mtime: fixed, so the archive is reproducible
        data.len() as u32,
        0, // dev major
        0, // dev minor
        rdev_major,
        rdev_minor,
        name_size as u32,
        0, // check
    ];
    out.extend_from_slice(b"070701");
    for field in fields {
        out.extend_from_slice(format!("{field:08x}").as_bytes());
    }
    out.extend_from_slice(path.as_bytes());
    out.push(0);
    pad_to_four(out);
    out.extend_from_slice(data);
    pad_to_four(out);
}

fn pad_to_four(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_matches_newc() {
        let archive = newc_archive(&[CpioEntry::File {
            path: "init",
            mode: 0o755,
            data: b"abc",
        }]);
        assert_eq!(&archive[..6], b"070701");
        // mode field (second) of the first header
        assert_eq!(&archive[14..22], b"000081ed");
        // filesize field
        assert_eq!(&archive[54..62], b"00000003");
        // name starts after the 110-byte header, then NUL, padded to 4
        assert_eq!(&archive[110..115], b"init\0");
        assert_eq!(&archive[116..119], b"abc");
        assert_eq!(archive.len() % 4, 0);
        let trailer = b"TRAILER!!!";
        assert!(archive.windows(trailer.len()).any(|w| w == trailer));
    }

    #[test]
    fn device_numbers_are_recorded() {
        let archive = newc_archive(&[CpioEntry::CharDevice {
            path: "dev/console",
            mode: 0o600,
            major: 5,
            minor: 1,
        }]);
        // rdevmajor and rdevminor are the 10th and 11th fields
        assert_eq!(&archive[6 + 9 * 8..6 + 10 * 8], b"00000005");
        assert_eq!(&archive[6 + 10 * 8..6 + 11 * 8], b"00000001");
    }
}
