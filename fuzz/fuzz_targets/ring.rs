// SPDX-License-Identifier: MPL-2.0
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gstrsipcpipeline::fuzzing::init();
    gstrsipcpipeline::fuzzing::ring(data);
});
