//! The local server's `/v1` bearer key: `WXPUSH_API_KEY`, or one generated once and kept in
//! `.wxpush/api_key`. The folder is created 0700 and the file 0600 from the start (no window
//! in which another user could read it), and a key file that others can read is refused.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Where the key came from (it decides what `wxpush serve` prints).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// `WXPUSH_API_KEY`: never printed (it is the operator's, in their environment).
    Environment,
    /// Read from the key file.
    File,
    /// Generated now and written to the key file.
    Generated,
}

/// The key file inside `dir`.
pub fn key_path(dir: &Path) -> PathBuf {
    dir.join("api_key")
}

/// The key and where it came from. `env` is the value of `WXPUSH_API_KEY` (if set).
pub fn load_or_create(dir: &Path, env: Option<String>) -> Result<(String, KeySource), String> {
    if let Some(k) = env.filter(|k| !k.trim().is_empty()) {
        return Ok((k.trim().to_string(), KeySource::Environment));
    }
    let path = key_path(dir);
    if let Some(k) = read_private(&path)? {
        return Ok((k, KeySource::File));
    }
    let key = format!("wxp_{:032x}", rand::random::<u128>());
    crate::private_fs::create_private_dir(dir)?;
    write_private(&path, &key)?;
    Ok((key, KeySource::Generated))
}

/// The key in `path`, if there is one; an error when the file can be read by others.
pub fn read_private(path: &Path) -> Result<Option<String>, String> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "{} can be read by other users (mode {:o}); run `chmod 600 {}` or delete it to get a new key",
                path.display(),
                mode & 0o777,
                path.display()
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let key = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(Some(key.trim().to_string()).filter(|k| !k.is_empty()))
}

pub(crate) fn write_private(path: &Path, key: &str) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(key.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn created_private_reused_and_refused_when_readable() {
        let root = std::env::temp_dir().join(format!("wxpush-key-{:x}", rand::random::<u64>()));
        let dir = root.join(".wxpush");
        let (key, source) = load_or_create(&dir, None).unwrap();
        assert_eq!(source, KeySource::Generated);
        assert_eq!((mode(&dir), mode(&key_path(&dir))), (0o700, 0o600));
        assert_eq!(
            load_or_create(&dir, None).unwrap(),
            (key.clone(), KeySource::File)
        );
        assert_eq!(
            load_or_create(&dir, Some(" env-key ".into())).unwrap(),
            ("env-key".to_string(), KeySource::Environment)
        );
        std::fs::set_permissions(key_path(&dir), std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create(&dir, None).unwrap_err();
        assert!(err.contains("can be read by other users"), "{err}");
        assert!(!err.contains(&key), "the error does not show the key");
        std::fs::remove_dir_all(root).unwrap();
    }
}
