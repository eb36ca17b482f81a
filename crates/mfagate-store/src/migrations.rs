//! The migrations of both databases, compiled into the binary so a release needs no files
//! beside it. Each store lists its own (`sqlite/mod.rs`, `postgres/mod.rs`): the same steps in
//! each dialect, numbered per database.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use sqlx::migrate::{Migration, MigrationSource, MigrationType};
use sqlx::SqlStr;

/// Version, name, SQL.
pub(crate) type Steps = &'static [(i64, &'static str, &'static str)];

/// A list of migrations as sqlx's migrator reads them.
#[derive(Debug)]
pub(crate) struct EmbeddedMigrations(pub(crate) Steps);

impl<'s> MigrationSource<'s> for EmbeddedMigrations {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, sqlx::error::BoxDynError>> + Send + 's>>
    {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|(version, name, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*name),
                        MigrationType::Simple,
                        SqlStr::from_static(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}
