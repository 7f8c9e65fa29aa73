use std::fmt;
use std::path::PathBuf;

/// One thing wrong with the knowledge files, located as precisely as known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based line; `None` when the problem concerns the whole file.
    pub line: Option<usize>,
    pub message: String,
}

impl Problem {
    pub fn new(file: impl Into<PathBuf>, line: Option<usize>, message: impl Into<String>) -> Self {
        Problem { file: file.into(), line, message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file.display(), line, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for Problem {}

/// Loading failed; carries every problem found, not just the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KbError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for KbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} problem(s) in the knowledge base:", self.problems.len())?;
        for p in &self.problems {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for KbError {}

/// Where each line of a file starts, built once per file: finding a span's
/// line is then a binary search, where counting newlines from the top for
/// every span made loading a large file quadratic.
pub(crate) struct LineIndex {
    /// Byte offset of the first byte after each `\n`.
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(text: impl AsRef<[u8]>) -> Self {
        let starts = text.as_ref().iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i + 1).collect();
        LineIndex { starts }
    }

    /// 1-based line of a byte offset; offsets past the end count as on the last line.
    pub(crate) fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::LineIndex;

    #[test]
    fn line_index_counts_newlines_before_the_offset() {
        let text = "a\nbc\n\n退货\n";
        let index = LineIndex::new(text);
        let naive = |o: usize| text.as_bytes()[..o.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1;
        for offset in 0..text.len() + 3 {
            assert_eq!(index.line(offset), naive(offset), "offset {offset}");
        }
        assert_eq!(LineIndex::new("").line(0), 1);
    }
}
