//! cledar-sdk 2.3.0 (`RedisService`): a pydantic model is one JSON string
//! (`json.dumps` of `model_dump()`, enums as their lower-case name,
//! datetimes in ISO 8601) under the caller's key: statehouse's documents,
//! and synced models in the JSON layout.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use statehouse::{ModelLayout, Statehouse, Synced, SyncedModel};

use crate::{Res, expect};

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    #[default]
    Draft,
    Paid,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Line {
    sku: String,
    qty: u32,
}

/// The Python model `Invoice` (interop.py).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Invoice {
    id: String,
    customer: String,
    total: f64,
    status: Status,
    issued: DateTime<Utc>,
    lines: Vec<Line>,
    note: Option<String>,
}

impl SyncedModel for Invoice {
    const LAYOUT: ModelLayout = ModelLayout::Json;

    fn id(&self) -> String {
        self.id.clone()
    }

    fn set_id(&mut self, id: &str) {
        self.id = id.to_owned();
    }
}

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Res<DateTime<Utc>> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
        .single()
        .ok_or_else(|| "not a date".into())
}

/// The invoice cledar stored, as a document and as a synced model.
pub(crate) async fn read(state: &Statehouse) -> Res<()> {
    let expected = Invoice {
        id: "py-1".into(),
        customer: "Zoë 🎉".into(),
        total: 1e20,
        status: Status::Paid,
        issued: at(2026, 1, 2, 3, 4, 5)?,
        lines: vec![Line {
            sku: "tea".into(),
            qty: 2,
        }],
        note: None,
    };
    let document = state.documents().get::<Invoice>("Invoice:py-1").await?;
    expect("the document Invoice:py-1", document.as_ref(), Some(&expected))?;
    let synced = Synced::<Invoice>::load(state, "py-1").await?;
    expect("the synced model's layout", synced.layout(), ModelLayout::Json)?;
    expect("the synced model Invoice py-1", synced.value(), &expected)
}

/// Invoices cledar reads back (`cledar-read`): a synced model and a document.
pub(crate) async fn write(state: &Statehouse) -> Res<()> {
    let issued = at(2026, 3, 4, 5, 6, 7)?;
    let fill = |invoice: &mut Invoice| {
        invoice.customer = "Ada 🎉".into();
        invoice.total = 0.1;
        invoice.status = Status::Draft;
        invoice.issued = issued;
        invoice.lines = vec![Line {
            sku: "jam".into(),
            qty: 3,
        }];
        invoice.note = Some("from Rust".into());
    };
    Synced::<Invoice>::load(state, "rs-1").await?.modify(fill).await?;
    let mut document = Invoice {
        id: "rs-doc".into(),
        ..Invoice::default()
    };
    fill(&mut document);
    state.documents().set("Invoice:rs-doc", &document).await?;
    Ok(())
}
