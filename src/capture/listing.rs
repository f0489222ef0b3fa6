//! The listing of V4L2 device nodes that `ceus-edge devices` prints.

use std::path::PathBuf;

use serde::Serialize;

/// One `/dev/video*` node.
#[derive(Clone, Debug, Serialize)]
pub struct DeviceListing {
    pub path: PathBuf,
    pub driver: String,
    pub card: String,
    pub bus: String,
    /// Names of the node's `V4L2_CAP_*` capabilities, such as `video-capture`.
    pub capabilities: Vec<&'static str>,
    /// Formats of a capture node; empty for other nodes.
    pub formats: Vec<FormatListing>,
    /// Reason the node could not be opened or queried, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One pixel format from `VIDIOC_ENUM_FMT`.
#[derive(Clone, Debug, Serialize)]
pub struct FormatListing {
    pub fourcc: String,
    pub description: String,
    pub sizes: Vec<SizeListing>,
}

/// Frame sizes from `VIDIOC_ENUM_FRAMESIZES`.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SizeListing {
    /// One size, with its frame intervals.
    Discrete {
        width: u32,
        height: u32,
        intervals: Vec<IntervalListing>,
    },
    /// A range of sizes in steps (continuous when the steps are 1).
    Stepwise {
        min_width: u32,
        max_width: u32,
        step_width: u32,
        min_height: u32,
        max_height: u32,
        step_height: u32,
    },
}

/// Frame intervals from `VIDIOC_ENUM_FRAMEINTERVALS`, in seconds as a fraction.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum IntervalListing {
    Discrete {
        numerator: u32,
        denominator: u32,
    },
    Stepwise {
        min: [u32; 2],
        max: [u32; 2],
        step: [u32; 2],
    },
}

/// Names of the `V4L2_CAP_*` bits a listing shows, from videodev2.h.
pub const CAPABILITY_NAMES: [(u32, &str); 12] = [
    (0x0000_0001, "video-capture"),
    (0x0000_0002, "video-output"),
    (0x0000_0004, "video-overlay"),
    (0x0000_1000, "video-capture-mplane"),
    (0x0000_2000, "video-output-mplane"),
    (0x0000_4000, "video-m2m-mplane"),
    (0x0000_8000, "video-m2m"),
    (0x0080_0000, "meta-capture"),
    (0x0100_0000, "read-write"),
    (0x0400_0000, "streaming"),
    (0x0800_0000, "meta-output"),
    (0x1000_0000, "touch"),
];

/// Lists the names of the capability bits set in `capabilities`.
pub fn capability_names(capabilities: u32) -> Vec<&'static str> {
    CAPABILITY_NAMES
        .iter()
        .filter(|(bit, _)| capabilities & bit != 0)
        .map(|(_, name)| *name)
        .collect()
}

/// Selects the `/dev/video*` nodes in `entries`, sorted by number (`video2` before
/// `video10`).
pub fn video_nodes(entries: impl IntoIterator<Item = PathBuf>) -> Vec<PathBuf> {
    let mut nodes: Vec<(u64, PathBuf)> = entries
        .into_iter()
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?;
            let number = name.strip_prefix("video")?.parse().ok()?;
            Some((number, path))
        })
        .collect();
    nodes.sort();
    nodes.into_iter().map(|(_, path)| path).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_nodes_sorted_by_number() {
        let entries = [
            "/dev/video10",
            "/dev/null",
            "/dev/video2",
            "/dev/videoX",
            "/dev/video0",
        ]
        .map(PathBuf::from);
        let nodes = video_nodes(entries);
        let expected = ["/dev/video0", "/dev/video2", "/dev/video10"].map(PathBuf::from);
        assert_eq!(nodes, expected);
    }

    #[test]
    fn capability_names_of_a_capture_node() {
        // A typical UVC capture node: capture, streaming and device caps.
        let names = capability_names(0x8400_0001);
        assert_eq!(names, ["video-capture", "streaming"]);
    }
}
