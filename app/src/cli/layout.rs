//! `layout`: how statehouse lays out its Redis keys.

use std::io::Write;

use super::{CliError, quoted, store_name};
use crate::Settings;

pub(super) fn layout(settings: &Settings, out: &mut dyn Write) -> Result<(), CliError> {
    let prefix = if settings.prefix.is_empty() {
        "(none)".to_owned()
    } else {
        quoted(&settings.prefix)
    };
    writeln!(out, "statehouse key layout (see docs/keys.md)")?;
    writeln!(out, "store:  {}", store_name(settings))?;
    writeln!(out, "prefix: {prefix}, put in front of every key and pattern")?;
    writeln!(out)?;
    writeln!(out, "family     redis key                 type    notes")?;
    writeln!(
        out,
        "documents  {{prefix}}{{key}}              string  JSON value; key used verbatim (validated: 1-512 bytes, no control characters)"
    )?;
    Ok(())
}
