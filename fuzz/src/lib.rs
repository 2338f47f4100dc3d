//! The fuzz targets' checks, one module per target, shared by the
//! libFuzzer binaries in `fuzz_targets/` (`make fuzz`) and by the replay of
//! the committed corpus in `tests/` (`make test`). Each check takes the
//! raw fuzz input and panics when an invariant breaks:
//!
//! * [`stream`]: the component stream reader against rxml, and every
//!   stanza's memory against its budget.
//! * [`http`]: the bot's HTTP/1.1 answer against a reference reader.
//! * [`reply`]: the reply rules, on any bot answer and any pushed JSON.
//! * [`api`]: one connection to the connector's API.

// The component crate's counting allocator: the global allocator of every
// program that links this crate (the fuzz targets and its tests), so the
// stream target holds the parser's account of a stanza's memory to what it
// really allocates.
#[path = "../../component/src/counted_alloc.rs"]
pub mod alloc_meter;
pub mod api;
pub mod http;
pub mod input;
pub mod reply;
pub mod sendable;
pub mod stream;
