// SPDX-License-Identifier: MPL-2.0
//! Records the fuzzers' seed corpus from real sessions (see `scripts/fuzz seeds`).
//!
//! ```text
//! cargo run --features fuzzing --example fuzz-seeds -- fuzz/corpus
//! ```

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/corpus".into());
    let n = gstrsipcpipeline::fuzzing::record_seeds(std::path::Path::new(&dir));
    println!("{n} new seeds in {dir}");
}
