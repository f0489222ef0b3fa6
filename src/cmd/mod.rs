//! One module per subcommand: each has its clap `Args` and a `run` function.

mod infer;
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
    /// Run the DenseNet-201 feature extractor on a tensor or an image.
    Infer(infer::Args),
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Inspect(args) => inspect::run(args),
        Command::Tic(args) => tic::run(args),
        Command::Phantom(args) => phantom::run(args),
        Command::Infer(args) => infer::run(args),
    }
}
