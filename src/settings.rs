// SPDX-License-Identifier: MPL-2.0
//! The properties the sink and the src share, with the C elements' names, ranges and units.

use std::time::Duration;

use gst::glib;
use gst::prelude::*;

pub const DEFAULT_ACK_TIME_US: u64 = 10_000_000;

#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub fdin: i32,
    pub fdout: i32,
    pub read_chunk_size: u32,
    pub ack_time_us: u64,
}

impl Settings {
    pub fn new(read_chunk_size: u32) -> Self {
        Settings {
            fdin: -1,
            fdout: -1,
            read_chunk_size,
            ack_time_us: DEFAULT_ACK_TIME_US,
        }
    }

    pub fn ack_time(&self) -> Duration {
        Duration::from_micros(self.ack_time_us)
    }

    /// Handles a property of [`properties`]; false for any other name.
    pub fn set(&mut self, name: &str, value: &glib::Value) -> bool {
        match name {
            "fdin" => self.fdin = value.get().unwrap(),
            "fdout" => self.fdout = value.get().unwrap(),
            "read-chunk-size" => self.read_chunk_size = value.get().unwrap(),
            "ack-time" => self.ack_time_us = value.get().unwrap(),
            _ => return false,
        }
        true
    }

    pub fn get(&self, name: &str) -> Option<glib::Value> {
        Some(match name {
            "fdin" => self.fdin.to_value(),
            "fdout" => self.fdout.to_value(),
            "read-chunk-size" => self.read_chunk_size.to_value(),
            "ack-time" => self.ack_time_us.to_value(),
            _ => return None,
        })
    }
}

/// The property specs; `default_chunk` differs between the sink (4096) and the src (65536),
/// as in C.
pub fn properties(default_chunk: u32) -> Vec<glib::ParamSpec> {
    vec![
        glib::ParamSpecInt::builder("fdin")
            .nick("Input file descriptor")
            .blurb("File descriptor to receive from the peer; it may equal fdout (one socket)")
            .minimum(-1)
            .maximum(i32::MAX)
            .default_value(-1)
            .mutable_ready()
            .build(),
        glib::ParamSpecInt::builder("fdout")
            .nick("Output file descriptor")
            .blurb("File descriptor to send to the peer; it may equal fdin (one socket)")
            .minimum(-1)
            .maximum(i32::MAX)
            .default_value(-1)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("read-chunk-size")
            .nick("Read chunk size")
            .blurb("Read chunk size in bytes")
            .minimum(1)
            .maximum(1 << 24)
            .default_value(default_chunk)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt64::builder("ack-time")
            .nick("Ack time")
            .blurb(
                "Maximum time to wait for a response from the peer, in microseconds \
                 (as in the C ipcpipeline elements)",
            )
            .default_value(DEFAULT_ACK_TIME_US)
            .mutable_ready()
            .build(),
    ]
}

/// The `disconnect` action signal both elements have.
pub fn disconnect_signal<T: glib::subclass::types::ObjectSubclass>(
    handler: fn(&T),
) -> glib::subclass::Signal
where
    <T as glib::subclass::types::ObjectSubclass>::Type: IsA<glib::Object>,
{
    glib::subclass::Signal::builder("disconnect")
        .action()
        .class_handler(move |args| {
            let obj = args[0].get::<T::Type>().unwrap();
            handler(glib::subclass::types::ObjectSubclassIsExt::imp(&obj));
            None
        })
        .build()
}
