//! Standard workloads run beside an attack (stress-ng, hackbench, nginx + wrk, ...), wrapping
//! the real tools and parsing their output.
//!
//! Not built yet (issue 7). Nothing here is used by the harness today.
