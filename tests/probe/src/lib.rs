// SPDX-License-Identifier: MPL-2.0
//! A test plugin for the sandbox tests: `rsipcsandboxprobe attempt=...` passes buffers
//! through and, on its way to PAUSED, tries one thing a compromised element would try. A
//! refusal is an ERROR with the system's reason, as any element that fails to open its
//! resource posts; success is an element message `rsipc-sandbox-probe, done=<attempt>`.
//!
//! Attempts: `connect:HOST:PORT` (a TCP connection), `read:PATH`, `write:PATH`,
//! `spawn:PROGRAM` (start a program, as an element that runs a helper would) and
//! `execve:PROGRAM` (replace this process: only ever used where it must be refused).

use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

mod imp {
    use super::*;

    pub struct Probe {
        sinkpad: gst::Pad,
        srcpad: gst::Pad,
        attempt: Mutex<Option<String>>,
    }

    impl Probe {
        fn try_it(attempt: &str) -> std::io::Result<()> {
            let (what, arg) = attempt.split_once(':').unwrap_or((attempt, ""));
            match what {
                "connect" => std::net::TcpStream::connect(arg).map(drop),
                "read" => std::fs::read(arg).map(drop),
                "write" => std::fs::write(arg, b"written from the slave"),
                "spawn" => std::process::Command::new(arg).status().map(drop),
                "execve" => {
                    let prog = std::ffi::CString::new(arg)?;
                    let argv = [prog.as_ptr(), std::ptr::null()];
                    unsafe { libc::execv(prog.as_ptr(), argv.as_ptr()) };
                    Err(std::io::Error::last_os_error())
                }
                _ => Err(std::io::Error::other("unknown attempt")),
            }
        }
    }

    #[glib::object_subclass]
    impl ObjectSubclass for Probe {
        const NAME: &'static str = "GstRsIpcSandboxProbe";
        type Type = super::Probe;
        type ParentType = gst::Element;

        fn with_class(klass: &Self::Class) -> Self {
            let sinkpad = gst::Pad::builder_from_template(&klass.pad_template("sink").unwrap())
                .chain_function(|_, parent, buffer| {
                    Probe::catch_panic_pad_function(
                        parent,
                        || Err(gst::FlowError::Error),
                        |p| p.srcpad.push(buffer),
                    )
                })
                .flags(gst::PadFlags::PROXY_CAPS | gst::PadFlags::PROXY_ALLOCATION)
                .build();
            let srcpad = gst::Pad::builder_from_template(&klass.pad_template("src").unwrap())
                .flags(gst::PadFlags::PROXY_CAPS | gst::PadFlags::PROXY_ALLOCATION)
                .build();
            Probe {
                sinkpad,
                srcpad,
                attempt: Mutex::new(None),
            }
        }
    }

    impl ObjectImpl for Probe {
        fn properties() -> &'static [glib::ParamSpec] {
            static P: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
                vec![
                    glib::ParamSpecString::builder("attempt")
                        .blurb("What to try on the way to PAUSED")
                        .build(),
                ]
            });
            P.as_ref()
        }

        fn set_property(&self, _id: usize, value: &glib::Value, _pspec: &glib::ParamSpec) {
            *self.attempt.lock().unwrap() = value.get().unwrap();
        }

        fn property(&self, _id: usize, _pspec: &glib::ParamSpec) -> glib::Value {
            self.attempt.lock().unwrap().to_value()
        }

        fn constructed(&self) {
            self.parent_constructed();
            self.obj().add_pad(&self.sinkpad).unwrap();
            self.obj().add_pad(&self.srcpad).unwrap();
        }
    }

    impl GstObjectImpl for Probe {}

    impl ElementImpl for Probe {
        fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
            static M: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
                gst::subclass::ElementMetadata::new(
                    "Sandbox probe",
                    "Testing",
                    "Tries what a compromised element would try, for the sandbox tests",
                    "gst-ipcpipeline-rs developers",
                )
            });
            Some(&*M)
        }

        fn pad_templates() -> &'static [gst::PadTemplate] {
            static T: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
                let any = gst::Caps::new_any();
                vec![
                    gst::PadTemplate::new(
                        "sink",
                        gst::PadDirection::Sink,
                        gst::PadPresence::Always,
                        &any,
                    )
                    .unwrap(),
                    gst::PadTemplate::new(
                        "src",
                        gst::PadDirection::Src,
                        gst::PadPresence::Always,
                        &any,
                    )
                    .unwrap(),
                ]
            });
            T.as_ref()
        }

        fn change_state(
            &self,
            transition: gst::StateChange,
        ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
            let attempt = self.attempt.lock().unwrap().clone();
            if let (gst::StateChange::ReadyToPaused, Some(attempt)) = (transition, attempt) {
                match Probe::try_it(&attempt) {
                    Ok(()) => {
                        let s = gst::Structure::builder("rsipc-sandbox-probe")
                            .field("done", &attempt)
                            .build();
                        let _ = self.obj().post_message(
                            gst::message::Element::builder(s).src(&*self.obj()).build(),
                        );
                    }
                    Err(e) => {
                        gst::element_imp_error!(
                            self,
                            gst::ResourceError::OpenReadWrite,
                            ("{attempt} refused: {e}")
                        );
                        return Err(gst::StateChangeError);
                    }
                }
            }
            self.parent_change_state(transition)
        }
    }
}

glib::wrapper! {
    pub struct Probe(ObjectSubclass<imp::Probe>) @extends gst::Element, gst::Object;
}

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "rsipcsandboxprobe",
        gst::Rank::NONE,
        Probe::static_type(),
    )
}

gst::plugin_define!(
    rsipcsandboxprobe,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    env!("CARGO_PKG_VERSION"),
    "MPL-2.0",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    "https://example.invalid/gst-ipcpipeline-rs",
    "2026-12-01"
);
