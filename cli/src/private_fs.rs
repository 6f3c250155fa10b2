//! Files only their owner may read: the local server's database (access tokens, decrypted
//! user messages) and its API key. Folders wxpush creates are 0700 and files 0600 from the
//! moment they exist (never created open and tightened later); an existing file, or
//! wxpush's own `.wxpush` folder, that others can read is tightened, with a warning.

use std::path::Path;
use tracing::warn;

/// Creates `dir` and any missing parent, each 0700.
pub fn create_private_dir(dir: &Path) -> Result<(), String> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))
}

/// Makes `path` ready to hold the embedded database: its folder created 0700 when missing
/// (an existing `.wxpush` folder that others can enter tightened to 0700; any other existing
/// folder is the operator's and left as it is), the file created empty with mode 0600, or,
/// when it exists and others can read or write it, tightened to the owner's bits only.
pub fn prepare_private_file(path: &Path) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            create_private_dir(dir)?;
        } else if dir.file_name().is_some_and(|n| n == ".wxpush") {
            tighten(dir)?;
        }
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => tighten(path),
        Err(e) => Err(format!("cannot create {}: {e}", path.display())),
    }
}

/// Clears the group and other bits of `path` when any is set, with a warning.
fn tighten(path: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta =
            std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            let tight = mode & !0o077;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(tight)).map_err(
                |e| {
                    format!(
                        "{} can be read by other users (mode {:o}) and cannot be tightened: {e}; run `chmod go-rwx {}`",
                        path.display(),
                        mode,
                        path.display()
                    )
                },
            )?;
            warn!(
                path = %path.display(),
                was = format!("{mode:o}"),
                now = format!("{tight:o}"),
                "other users could read this; tightened to the owner only"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn created_private_and_loose_ones_tightened() {
        let root = std::env::temp_dir().join(format!("wxpush-fs-{:x}", rand::random::<u64>()));
        let file = root.join("a/b/data.redb");
        prepare_private_file(&file).unwrap();
        assert_eq!(
            (mode(&root), mode(&root.join("a/b")), mode(&file)),
            (0o700, 0o700, 0o600)
        );
        let own = root.join(".wxpush");
        std::fs::create_dir(&own).unwrap();
        std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o755)).unwrap();
        let loose = own.join("wxpush.redb");
        std::fs::write(&loose, b"").unwrap();
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
        prepare_private_file(&loose).unwrap();
        assert_eq!((mode(&own), mode(&loose)), (0o700, 0o600));
        // Someone else's folder is left alone; the file in it is still private.
        let shared = root.join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
        prepare_private_file(&shared.join("x.redb")).unwrap();
        assert_eq!(
            (mode(&shared), mode(&shared.join("x.redb"))),
            (0o755, 0o600)
        );
        std::fs::remove_dir_all(root).unwrap();
    }
}
