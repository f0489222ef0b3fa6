//! One module per subcommand: each has its clap `Args` and a `run` function.

mod devices;
mod inspect;
mod phantom;
mod tic;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum Command {
    /// Show what a DICOM, Y4M or PNG-folder input contains.
    Inspect(inspect::Args),
    /// Compute the time-intensity curve, the bolus fit and the peak-enhancement frame.
    Tic(tic::Args),
    /// Write a synthetic CEUS exam with its ground truth.
    Phantom(phantom::Args),
    /// List the V4L2 capture devices with their formats, frame sizes and frame rates.
    Devices(devices::Args),
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Inspect(args) => inspect::run(args),
        Command::Tic(args) => tic::run(args),
        Command::Phantom(args) => phantom::run(args),
        Command::Devices(args) => devices::run(args),
    }
}
