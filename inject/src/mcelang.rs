//! The mce-inject input language (andikleen/mce-inject): parse it, and print records canonically.
//!
//! ```text
//! file   := { record }            '#' starts a comment to the end of the line; keywords are
//! record := start term { term }   case-insensitive; layout is free (many terms per line)
//! start  := CPU N | CPU N N       (the second number is the bank) | MCE (cpu 0)
//!         | CPU N : MACHINE CHECK EXCEPTION : N BANK N : N    (mcgstatus, bank, status)
//! term   := STATUS {stflag | N}   OR-ed, then assigned (so an earlier ADDR loses ADDRV)
//!         | MCGSTATUS {mgflag | N}
//!         | BANK N | TSC N | TIME N | SOCKETID N | APICID N | MCGCAP N
//!         | RIP N | RIP N : N | RIP N : < N > { SYMBOL }      (cs:ip)
//!         | ADDR N (also sets ADDRV) | MISC N (also sets MISCV) | PROCESSOR N : N (vendor:cpuid)
//!         | NOBROADCAST | IRQBROADCAST | NMIBROADCAST | HOLD | IN_IRQ | IN_PROC | POLL | EXCP
//!         | SYND N | IPID N       rasdrill extensions: the SMCA registers mce-inject's debugfs
//!                                 interface takes; andikleen's tool does not know them
//! N      := 0x1f | 017 | 15       C style: a bare 1234 is decimal, a leading 0 means octal
//! ```
//! Unset fields are zero and mode keywords apply to their own record only. When a record names
//! several broadcast modes (or both POLL and EXCP, or both IN_IRQ and IN_PROC) the last one wins.

use crate::excerpt::excerpt;
use crate::record::{Broadcast, Context, Delivery, MceRecord};
use crate::status;

/// A syntax error, with the place it was found and what would have been valid there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ParseError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// The largest mce-inject file read (about 20,000 records; mce-test's files are a few KB).
/// Parsing holds the whole file and its tokens: a bigger file is refused, not read.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// An mce-inject file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file} is larger than {} MiB, the limit for an mce-inject file; split it", MAX_FILE_BYTES >> 20)]
    TooBig { file: String },
}

/// The text of an mce-inject file from `reader`, refusing one over [`MAX_FILE_BYTES`] after
/// reading at most one byte more; `file` names it in errors.
pub fn read_text(reader: impl std::io::Read, file: &str) -> Result<String, ReadError> {
    use std::io::Read as _;
    let mut text = String::new();
    reader
        .take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|source| ReadError::Io {
            file: file.to_string(),
            source,
        })?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(ReadError::TooBig {
            file: file.to_string(),
        });
    }
    Ok(text)
}

/// [`read_text`] of the file at `path`.
pub fn read_file(path: &std::path::Path) -> Result<String, ReadError> {
    let file = path.display().to_string();
    match std::fs::File::open(path) {
        Ok(f) => read_text(f, &file),
        Err(source) => Err(ReadError::Io { file, source }),
    }
}

/// Parses every record of `text`; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Vec<MceRecord>, ParseError> {
    Ok(parse_with_lines(text, file)?
        .into_iter()
        .map(|(_, r)| r)
        .collect())
}

/// Like [`parse`], with the line each record starts on.
pub fn parse_with_lines(text: &str, file: &str) -> Result<Vec<(usize, MceRecord)>, ParseError> {
    let tokens = lex(text).map_err(|e| e.in_file(file))?;
    Parser { tokens, pos: 0 }
        .file()
        .map_err(|e| e.in_file(file))
}

/// Parses one C-style number (`0x2a`, `052`, `42`), explaining the usual mistakes.
pub fn parse_number(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let q = excerpt(t);
    let digits_ok = |s: &str, radix| !s.is_empty() && s.chars().all(|c| c.is_digit(radix));
    let (digits, radix) = if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        if !digits_ok(hex, 16) {
            return Err(format!(
                "`{q}` is not a number: 0x must be followed by hex digits"
            ));
        }
        (hex, 16)
    } else if t.len() > 1 && t.starts_with('0') {
        if !digits_ok(&t[1..], 8) {
            let hint = if digits_ok(t, 16) {
                format!(" (for hex write 0x{q})")
            } else {
                String::new()
            };
            return Err(format!(
                "`{q}` is not a number: a leading 0 means octal, digits 0-7{hint}"
            ));
        }
        (&t[1..], 8)
    } else if digits_ok(t, 10) {
        (t, 10)
    } else if digits_ok(t, 16) {
        return Err(hex_needs_0x(t));
    } else {
        return Err(format!(
            "`{q}` is not a number: expected decimal (42), hex (0x2a) or octal (052)"
        ));
    };
    u64::from_str_radix(digits, radix).map_err(|_| format!("`{q}` does not fit in 64 bits"))
}

/// Kernel logs print hex without 0x; this language (like C) needs the prefix.
fn hex_needs_0x(word: &str) -> String {
    let q = excerpt(word);
    format!("`{q}` is not a number: hex needs a 0x prefix (write 0x{q})")
}

/// Digits in a status as the kernel prints one (`%llx`, no 0x): with VAL set, always 16.
const KERNEL_STATUS_DIGITS: usize = 16;

/// A bare 16-digit number given as a status is almost surely copied from a kernel log, where it
/// is hex; read as decimal (the language's rule) it would be a different status with VAL clear.
/// Refuse it rather than guess.
fn kernel_hex_status(word: &str) -> Option<String> {
    if word.len() != KERNEL_STATUS_DIGITS || !word.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let decimal = word.parse::<u64>().ok()?;
    Some(format!(
        "`{word}` is ambiguous: the kernel log prints a status as 16 hex digits without 0x, \
         and bare digits read as decimal here; write 0x{word} for the kernel's hex \
         (or {decimal:#x} if you meant decimal)"
    ))
}

/// Parses a STATUS value as the language's STATUS term does (`VAL UC EN 0x134`), also accepting
/// every name in [`status::NAMED_BITS`] (`ADDRV`, `MISCV`, `DEFERRED`...) and `|` between words.
pub fn parse_status_words(text: &str) -> Result<u64, String> {
    let mut value = 0;
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == '|')
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        return Err(
            "a status is empty: give a number (0x9c00000000000000) or flags (VAL UC EN)".into(),
        );
    }
    for w in words {
        if let Some(refusal) = kernel_hex_status(w) {
            return Err(refusal);
        } else if w.starts_with(|c: char| c.is_ascii_digit()) {
            value |= parse_number(w)?;
        } else if let Some(v) = status_flag(w) {
            value |= v;
        } else if let Some(b) = status::named_bit(w) {
            value |= b.mask;
        } else {
            return Err(format!(
                "`{}` is not a status flag: expected a number or one of {}, {}",
                excerpt(w),
                STATUS_FLAGS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(" "),
                status::NAMED_BITS
                    .iter()
                    .map(|b| b.name)
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
    }
    Ok(value)
}

/// The canonical text of one record. ADDR and MISC come before STATUS so that STATUS, which
/// overwrites, restores the exact value: `parse(print(r)) == [r]` for every record.
pub fn print(r: &MceRecord) -> String {
    let mut out = format!("CPU {} BANK {}\n", r.cpu, r.bank);
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    if r.addr != 0 {
        line(format!("ADDR {:#x}", r.addr));
    }
    if r.misc != 0 {
        line(format!("MISC {:#x}", r.misc));
    }
    line(format!("STATUS {:#x}", r.status));
    let hex = [
        ("MCGSTATUS", r.mcgstatus),
        ("MCGCAP", r.mcgcap),
        ("SYND", r.synd),
        ("IPID", r.ipid),
        ("TSC", r.tsc),
    ];
    for (name, v) in hex {
        if v != 0 {
            line(format!("{name} {v:#x}"));
        }
    }
    if r.time != 0 {
        line(format!("TIME {}", r.time));
    }
    if r.cs != 0 || r.ip != 0 {
        line(format!("RIP {:#x}:{:#x}", r.cs, r.ip));
    }
    if r.cpuvendor != 0 || r.cpuid != 0 {
        line(format!("PROCESSOR {}:{:#x}", r.cpuvendor, r.cpuid));
    }
    if r.socketid != 0 {
        line(format!("SOCKETID {}", r.socketid));
    }
    if r.apicid != 0 {
        line(format!("APICID {}", r.apicid));
    }
    let modes = [
        match r.broadcast {
            Broadcast::None => None,
            Broadcast::Off => Some("NOBROADCAST"),
            Broadcast::Irq => Some("IRQBROADCAST"),
            Broadcast::Nmi => Some("NMIBROADCAST"),
        },
        match r.context {
            Context::Random => None,
            Context::Process => Some("IN_PROC"),
            Context::Irq => Some("IN_IRQ"),
        },
        match r.delivery {
            Delivery::Auto => None,
            Delivery::Poll => Some("POLL"),
            Delivery::Exception => Some("EXCP"),
        },
        r.hold.then_some("HOLD"),
    ];
    for m in modes.into_iter().flatten() {
        line(m.to_string());
    }
    out
}

/// The canonical text of many records, one blank line between them.
pub fn print_all(records: &[MceRecord]) -> String {
    records.iter().map(print).collect::<Vec<_>>().join("\n")
}

const STATUS_FLAGS: &[(&str, u64)] = &[
    ("VAL", status::VAL),
    ("OVER", status::OVER),
    ("UC", status::UC),
    ("EN", status::EN),
    ("PCC", status::PCC),
    ("S", status::S),
    ("AR", status::AR),
    ("TES_YELLOW", status::TES_YELLOW),
    ("CORRECTED", status::VAL | status::EN),
    ("UNCORRECTED", status::VAL | status::UC | status::EN),
    ("FATAL", status::VAL | status::UC | status::EN | status::PCC),
    ("SRAO", status::S),
    ("SRAR", status::S | status::AR),
    ("UCNA", 0),
];

const MCGSTATUS_FLAGS: &[(&str, u64)] = &[
    ("RIPV", 1 << 0),
    ("EIPV", 1 << 1),
    ("MCIP", 1 << 2),
    ("LMCES", 1 << 3),
    ("TES_P", 1 << 11),
    ("SEAM_NR", 1 << 12),
];

const TERMS: &str = "STATUS, MCGSTATUS, BANK, ADDR, MISC, SYND, IPID, TSC, TIME, RIP, PROCESSOR, \
                     SOCKETID, APICID, MCGCAP, NOBROADCAST, IRQBROADCAST, NMIBROADCAST, HOLD, IN_IRQ, \
                     IN_PROC, POLL or EXCP";

fn lookup(table: &[(&str, u64)], word: &str) -> Option<u64> {
    table
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(word))
        .map(|(_, v)| *v)
}

fn status_flag(word: &str) -> Option<u64> {
    lookup(STATUS_FLAGS, word)
}

/// An error before the file name is known.
struct Located {
    line: usize,
    column: usize,
    message: String,
}

impl Located {
    fn in_file(self, file: &str) -> ParseError {
        ParseError {
            file: file.to_string(),
            line: self.line,
            column: self.column,
            message: self.message,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Num(u64),
    Punct(char),
    /// The text between `{` and `}` of a RIP term (a kernel symbol; discarded).
    Symbol,
    Eof,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    text: String,
    line: usize,
    column: usize,
}

impl Token {
    fn is_word(&self, w: &str) -> bool {
        matches!(&self.tok, Tok::Word(x) if x.eq_ignore_ascii_case(w))
    }

    fn describe(&self) -> String {
        match &self.tok {
            Tok::Eof => "end of file".into(),
            Tok::Num(_) => format!("number {}", excerpt(&self.text)),
            _ => format!("`{}`", excerpt(&self.text)),
        }
    }
}

fn lex(text: &str) -> Result<Vec<Token>, Located> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let (mut i, mut line, mut column) = (0, 1, 1);
    let word_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    while i < chars.len() {
        let c = chars[i];
        let (start_line, start_col) = (line, column);
        let err = |message: String| Located {
            line: start_line,
            column: start_col,
            message,
        };
        if c == '\n' {
            i += 1;
            line += 1;
            column = 1;
            continue;
        }
        if c == ' ' || c == '\t' || c == '\r' {
            i += 1;
            column += 1;
            continue;
        }
        if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        let tok = if c.is_ascii_alphabetic() || c == '_' || c.is_ascii_digit() {
            while i < chars.len() && word_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if c.is_ascii_digit() {
                Tok::Num(parse_number(&word).map_err(err)?)
            } else {
                Tok::Word(word)
            }
        } else if matches!(c, ':' | '<' | '>' | '}') {
            i += 1;
            Tok::Punct(c)
        } else if c == '{' {
            // The symbol of `RIP cs:<ip> {symbol}` may hold any text (`do_idle+0x1c/0x30`).
            i += 1;
            tokens.push(Token {
                tok: Tok::Punct('{'),
                text: "{".into(),
                line,
                column,
            });
            let sym_start = i;
            while i < chars.len() && chars[i] != '}' && chars[i] != '\n' {
                i += 1;
            }
            if i >= chars.len() || chars[i] != '}' {
                return Err(err(
                    "a `{` symbol is not closed: expected `}` on the same line".into(),
                ));
            }
            column += 1;
            let sym: String = chars[sym_start..i].iter().collect();
            let width = sym.chars().count();
            if width > 0 {
                tokens.push(Token {
                    tok: Tok::Symbol,
                    text: sym,
                    line,
                    column,
                });
            }
            column += width;
            continue;
        } else {
            return Err(err(format!(
                "unexpected character `{c}`: expected a keyword, a number, `:`, `<`, `>`, `{{`, `}}` or `#`"
            )));
        };
        column += i - start;
        tokens.push(Token {
            tok,
            text: chars[start..i].iter().collect(),
            line: start_line,
            column: start_col,
        });
    }
    tokens.push(Token {
        tok: Tok::Eof,
        text: String::new(),
        line,
        column,
    });
    Ok(tokens)
}

/// Kernel logs print hex without 0x, and the lexer reads `b200000000070f0f` as a word: for a
/// hex-only word with a digit in it, say so plainly instead of listing what was expected.
fn missing_0x(t: &Token) -> Option<Located> {
    match &t.tok {
        Tok::Word(w)
            if w.chars().all(|c| c.is_ascii_hexdigit())
                && w.chars().any(|c| c.is_ascii_digit()) =>
        {
            Some(Parser::error_at(t, hex_needs_0x(w)))
        }
        _ => None,
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos]
    }

    fn next(&mut self) -> Token {
        let t = self.tokens[self.pos].clone();
        if t.tok != Tok::Eof {
            self.pos += 1;
        }
        t
    }

    fn error_at(t: &Token, message: String) -> Located {
        Located {
            line: t.line,
            column: t.column,
            message,
        }
    }

    fn expected(&self, what: &str) -> Located {
        let t = self.peek();
        Self::error_at(t, format!("expected {what}, found {}", t.describe()))
    }

    fn file(&mut self) -> Result<Vec<(usize, MceRecord)>, Located> {
        let mut records = Vec::new();
        while self.peek().tok != Tok::Eof {
            let line = self.peek().line;
            let mut rec = self.start()?;
            let mut terms = 0;
            while !self.at_record_start() && self.peek().tok != Tok::Eof {
                self.term(&mut rec)?;
                terms += 1;
            }
            if terms == 0 {
                return Err(self.expected(&format!(
                    "a term ({TERMS}) for the record that starts on line {line}"
                )));
            }
            records.push((line, rec));
        }
        Ok(records)
    }

    fn at_record_start(&self) -> bool {
        self.peek().is_word("CPU") || self.peek().is_word("MCE")
    }

    fn keyword(&mut self, w: &str) -> Result<(), Located> {
        if self.peek().is_word(w) {
            self.next();
            Ok(())
        } else {
            Err(self.expected(&format!("`{w}`")))
        }
    }

    fn punct(&mut self, c: char) -> Result<(), Located> {
        if self.peek().tok == Tok::Punct(c) {
            self.next();
            Ok(())
        } else {
            Err(self.expected(&format!("`{c}`")))
        }
    }

    fn number(&mut self, field: &str) -> Result<u64, Located> {
        match self.peek().tok {
            Tok::Num(v) => {
                self.next();
                Ok(v)
            }
            _ => Err(missing_0x(self.peek())
                .unwrap_or_else(|| self.expected(&format!("a number for {field}")))),
        }
    }

    fn number_u32(&mut self, field: &str) -> Result<u32, Located> {
        let t = self.peek().clone();
        let v = self.number(field)?;
        u32::try_from(v).map_err(|_| {
            Self::error_at(
                &t,
                format!(
                    "{field} {} is too large: at most {}",
                    excerpt(&t.text),
                    u32::MAX
                ),
            )
        })
    }

    fn start(&mut self) -> Result<MceRecord, Located> {
        let mut rec = MceRecord::default();
        if self.peek().is_word("MCE") {
            self.next();
            return Ok(rec);
        }
        if !self.peek().is_word("CPU") {
            return Err(self.expected("`CPU` or `MCE` to start a record"));
        }
        self.next();
        rec.cpu = self.number_u32("CPU")?;
        match self.peek().tok {
            Tok::Num(_) => rec.bank = self.number_u32("the bank")?,
            Tok::Punct(':') => {
                // CPU N: MACHINE CHECK EXCEPTION: mcgstatus BANK bank: status (the kernel's panic line).
                self.next();
                for w in ["MACHINE", "CHECK", "EXCEPTION"] {
                    self.keyword(w)?;
                }
                self.punct(':')?;
                rec.mcgstatus = self.number("MCGSTATUS")?;
                self.keyword("BANK")?;
                rec.bank = self.number_u32("BANK")?;
                self.punct(':')?;
                rec.status = self.number("STATUS")?;
            }
            _ => {}
        }
        Ok(rec)
    }

    /// `{flag | N}`: OR-ed together.
    fn flags(&mut self, table: &[(&str, u64)]) -> u64 {
        let mut value = 0;
        loop {
            match &self.peek().tok {
                Tok::Num(v) => value |= v,
                Tok::Word(w) => match lookup(table, w) {
                    Some(v) => value |= v,
                    None => return value,
                },
                _ => return value,
            }
            self.next();
        }
    }

    fn term(&mut self, rec: &mut MceRecord) -> Result<(), Located> {
        let t = self.peek().clone();
        let Tok::Word(word) = &t.tok else {
            return Err(self.expected(&format!("a term ({TERMS})")));
        };
        let word = word.to_ascii_uppercase();
        self.next();
        match word.as_str() {
            "STATUS" => rec.status = self.flags(STATUS_FLAGS),
            "MCGSTATUS" => rec.mcgstatus = self.flags(MCGSTATUS_FLAGS),
            "BANK" => rec.bank = self.number_u32("BANK")?,
            "TSC" => rec.tsc = self.number("TSC")?,
            "TIME" => rec.time = self.number("TIME")?,
            "SOCKETID" => rec.socketid = self.number_u32("SOCKETID")?,
            "APICID" => rec.apicid = self.number_u32("APICID")?,
            "MCGCAP" => rec.mcgcap = self.number("MCGCAP")?,
            "SYND" => rec.synd = self.number("SYND")?,
            "IPID" => rec.ipid = self.number("IPID")?,
            "ADDR" => {
                rec.addr = self.number("ADDR")?;
                rec.status |= status::ADDRV;
            }
            "MISC" => {
                rec.misc = self.number("MISC")?;
                rec.status |= status::MISCV;
            }
            "RIP" => self.rip(rec)?,
            "PROCESSOR" => {
                rec.cpuvendor = self.number_u32("the PROCESSOR vendor")?;
                self.punct(':')?;
                rec.cpuid = self.number_u32("the PROCESSOR cpuid")?;
            }
            "NOBROADCAST" => rec.broadcast = Broadcast::Off,
            "IRQBROADCAST" => rec.broadcast = Broadcast::Irq,
            "NMIBROADCAST" => rec.broadcast = Broadcast::Nmi,
            "HOLD" => rec.hold = true,
            "IN_IRQ" => rec.context = Context::Irq,
            "IN_PROC" => rec.context = Context::Process,
            "POLL" => rec.delivery = Delivery::Poll,
            "EXCP" => rec.delivery = Delivery::Exception,
            _ => {
                if let Some(e) = missing_0x(&t) {
                    return Err(e);
                }
                let hint = if lookup(MCGSTATUS_FLAGS, &word).is_some() {
                    format!(
                        " ({word} is an MCGSTATUS flag, not a STATUS flag: write MCGSTATUS {word})"
                    )
                } else if status_flag(&word).is_some() {
                    " (STATUS flags belong right after STATUS)".to_string()
                } else {
                    String::new()
                };
                return Err(Self::error_at(
                    &t,
                    format!(
                        "expected a term ({TERMS}), found `{}`{hint}",
                        excerpt(&t.text)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// RIP N | RIP cs:N | RIP cs:<N> {symbol}
    fn rip(&mut self, rec: &mut MceRecord) -> Result<(), Located> {
        let first = self.peek().clone();
        let n = self.number("RIP")?;
        if self.peek().tok != Tok::Punct(':') {
            rec.ip = n;
            return Ok(());
        }
        rec.cs = u8::try_from(n).map_err(|_| {
            Self::error_at(
                &first,
                format!(
                    "RIP code segment {} is too large: at most 0xff",
                    excerpt(&first.text)
                ),
            )
        })?;
        self.next();
        if self.peek().tok == Tok::Punct('<') {
            self.next();
            rec.ip = self.number("RIP")?;
            self.punct('>')?;
            self.punct('{')?;
            if self.peek().tok != Tok::Symbol {
                return Err(self.expected("a symbol"));
            }
            self.next();
            self.punct('}')?;
        } else {
            rec.ip = self.number("RIP")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_over_the_limit_is_refused_after_reading_one_byte_too_many() {
        let limit = MAX_FILE_BYTES as usize;
        let ok = " ".repeat(limit);
        assert_eq!(read_text(ok.as_bytes(), "f").unwrap().len(), limit);
        // An endless input: only limit + 1 bytes are ever read.
        let err = read_text(std::io::repeat(b' '), "endless").unwrap_err();
        assert_eq!(
            err.to_string(),
            "endless is larger than 4 MiB, the limit for an mce-inject file; split it"
        );
        let err = read_file(std::path::Path::new("/no/such.mce")).unwrap_err();
        assert!(
            err.to_string().starts_with("cannot read /no/such.mce: "),
            "{err}"
        );
    }
    use rand::Rng;

    fn one(text: &str) -> MceRecord {
        let mut v = parse(text, "t").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.len(), 1, "{text}");
        v.remove(0)
    }

    fn err(text: &str) -> String {
        parse(text, "in.mce").unwrap_err().to_string()
    }

    #[test]
    fn numbers_are_c_style() {
        assert_eq!(parse_number("42"), Ok(42));
        assert_eq!(parse_number("0x2a"), Ok(42));
        assert_eq!(parse_number("0X2A"), Ok(42));
        assert_eq!(parse_number("052"), Ok(42));
        assert_eq!(parse_number("0"), Ok(0));
        assert_eq!(parse_number("0xffffffffffffffff"), Ok(u64::MAX));
        assert!(parse_number("9c7d410092080813")
            .unwrap_err()
            .contains("write 0x9c7d410092080813"));
        assert!(parse_number("09")
            .unwrap_err()
            .contains("leading 0 means octal"));
        assert!(parse_number("0x").unwrap_err().contains("hex digits"));
        assert!(parse_number("0x10000000000000000")
            .unwrap_err()
            .contains("64 bits"));
        assert!(parse_number("12z")
            .unwrap_err()
            .contains("expected decimal"));
    }

    #[test]
    fn starts() {
        assert_eq!(one("CPU 3 STATUS 1").cpu, 3);
        let r = one("CPU 3 4 STATUS 1");
        assert_eq!((r.cpu, r.bank), (3, 4));
        let r = one("MCE STATUS 1");
        assert_eq!((r.cpu, r.bank, r.status), (0, 0, 1));
        let r =
            one("CPU 1: Machine Check Exception: 0x5 Bank 4: 0xb200000000070f0f\nRIP 0x10:0x1234");
        assert_eq!(
            (r.cpu, r.mcgstatus, r.bank, r.status),
            (1, 5, 4, 0xb200000000070f0f)
        );
        assert_eq!((r.cs, r.ip), (0x10, 0x1234));
    }

    #[test]
    fn keywords_are_case_insensitive_and_layout_is_free() {
        let a = one("cpu 1 bank 2 status val uc en addr 0x10 # comment\n");
        let b = one("CPU 1\n  BANK\n2 STATUS VAL\tUC EN\n\n# x\nADDR 16");
        assert_eq!(a, b);
        assert_eq!(
            a.status,
            status::VAL | status::UC | status::EN | status::ADDRV
        );
    }

    #[test]
    fn status_is_or_ed_then_assigned() {
        assert_eq!(
            one("MCE STATUS VAL 0x10 UC").status,
            status::VAL | status::UC | 0x10
        );
        // STATUS overwrites, so an ADDR before it loses ADDRV; one after keeps it.
        let before = one("MCE ADDR 0x1000 STATUS VAL");
        assert_eq!((before.addr, before.status), (0x1000, status::VAL));
        let after = one("MCE STATUS VAL ADDR 0x1000");
        assert_eq!(after.status, status::VAL | status::ADDRV);
        assert_eq!(
            one("MCE STATUS VAL MISC 3").status,
            status::VAL | status::MISCV
        );
        // An empty flag list is zero.
        assert_eq!(one("MCE STATUS BANK 1").status, 0);
    }

    #[test]
    fn status_flags() {
        let cases = [
            ("VAL", status::VAL),
            ("OVER", status::OVER),
            ("UC", status::UC),
            ("EN", status::EN),
            ("PCC", status::PCC),
            ("S", status::S),
            ("AR", status::AR),
            ("TES_YELLOW", 1 << 54),
            ("CORRECTED", status::VAL | status::EN),
            ("UNCORRECTED", status::VAL | status::UC | status::EN),
            ("FATAL", status::VAL | status::UC | status::EN | status::PCC),
            ("SRAO", status::S),
            ("SRAR", status::S | status::AR),
            ("UCNA", 0),
        ];
        for (flag, want) in cases {
            assert_eq!(one(&format!("MCE STATUS {flag}")).status, want, "{flag}");
        }
    }

    #[test]
    fn mcgstatus_flags() {
        let cases = [
            ("RIPV", 1),
            ("EIPV", 2),
            ("MCIP", 4),
            ("LMCES", 8),
            ("TES_P", 1 << 11),
            ("SEAM_NR", 1 << 12),
        ];
        for (flag, want) in cases {
            assert_eq!(
                one(&format!("MCE MCGSTATUS {flag}")).mcgstatus,
                want,
                "{flag}"
            );
        }
        assert_eq!(one("MCE MCGSTATUS RIPV EIPV 0x100").mcgstatus, 0x103);
    }

    #[test]
    fn number_terms() {
        let r = one(
            "CPU 2 BANK 5 TSC 0x99 TIME 1700000000 SOCKETID 1 APICID 4 MCGCAP 0x100010a \
             SYND 0x5 IPID 0xb000000000 MISC 0xd012 ADDR 0x1234 PROCESSOR 2:0x600f12",
        );
        assert_eq!((r.cpu, r.bank, r.tsc, r.time), (2, 5, 0x99, 1700000000));
        assert_eq!((r.socketid, r.apicid, r.mcgcap), (1, 4, 0x100010a));
        assert_eq!(
            (r.synd, r.ipid, r.misc, r.addr),
            (5, 0xb000000000, 0xd012, 0x1234)
        );
        assert_eq!((r.cpuvendor, r.cpuid), (2, 0x600f12));
    }

    #[test]
    fn rip_forms() {
        assert_eq!(
            (one("MCE RIP 0x1234").cs, one("MCE RIP 0x1234").ip),
            (0, 0x1234)
        );
        let r = one("MCE RIP 0x10:0x1234");
        assert_eq!((r.cs, r.ip), (0x10, 0x1234));
        let r = one("MCE RIP 0x33:<0xffffffff81000000> {do_idle+0x1c/0x30}");
        assert_eq!((r.cs, r.ip), (0x33, 0xffffffff81000000));
        let r = one("MCE RIP 16:<0x10> {x} STATUS 1");
        assert_eq!((r.cs, r.ip, r.status), (16, 0x10, 1));
    }

    #[test]
    fn mode_keywords_reset_per_record() {
        let v = parse(
            "CPU 0 STATUS 1 NMIBROADCAST IN_IRQ EXCP HOLD\nCPU 1 STATUS 1",
            "t",
        )
        .unwrap();
        assert_eq!(v[0].broadcast, Broadcast::Nmi);
        assert_eq!(v[0].context, Context::Irq);
        assert_eq!(v[0].delivery, Delivery::Exception);
        assert!(v[0].hold);
        assert_eq!(
            v[1],
            MceRecord {
                cpu: 1,
                status: 1,
                ..Default::default()
            }
        );
        let r = one("MCE STATUS 1 NOBROADCAST IN_PROC POLL");
        assert_eq!(
            (r.broadcast, r.context, r.delivery),
            (Broadcast::Off, Context::Process, Delivery::Poll)
        );
        assert_eq!(one("MCE STATUS 1 IRQBROADCAST").broadcast, Broadcast::Irq);
        // The last mode keyword wins.
        assert_eq!(
            one("MCE POLL EXCP NOBROADCAST NMIBROADCAST").delivery,
            Delivery::Exception
        );
    }

    #[test]
    fn many_records_with_their_lines() {
        let v = parse_with_lines(
            "# header\nCPU 0 STATUS 1\n\nCPU 1 STATUS 2 MCE STATUS 3",
            "t",
        )
        .unwrap();
        let lines: Vec<usize> = v.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [2, 4, 4]);
        assert!(parse("", "t").unwrap().is_empty());
        assert!(parse("# only a comment\n", "t").unwrap().is_empty());
    }

    #[test]
    fn errors_name_the_place_and_what_was_expected() {
        let cases = [
            // Kernel-log hex without 0x: the trap.
            ("CPU 0 BANK 4 STATUS 9c7d410092080813", "in.mce:1:21: `9c7d410092080813` is not a number: hex needs a 0x prefix (write 0x9c7d410092080813)"),
            ("CPU 0 BANK 4\nSTATUS 0x1 ADDR", "in.mce:2:16: expected a number for ADDR, found end of file"),
            ("STATUS 1", "in.mce:1:1: expected `CPU` or `MCE` to start a record, found `STATUS`"),
            ("CPU STATUS 1", "in.mce:1:5: expected a number for CPU, found `STATUS`"),
            ("CPU 0\nCPU 1 STATUS 1", "in.mce:2:1: expected a term"),
            ("CPU 0", "in.mce:1:6: expected a term"),
            ("CPU 0 FROB 1", "in.mce:1:7: expected a term"),
            ("CPU 0 UC", "in.mce:1:7: expected a term (STATUS, MCGSTATUS, BANK, ADDR, MISC, SYND, IPID, TSC, TIME, RIP, PROCESSOR, SOCKETID, APICID, MCGCAP, NOBROADCAST, IRQBROADCAST, NMIBROADCAST, HOLD, IN_IRQ, IN_PROC, POLL or EXCP), found `UC` (STATUS flags belong right after STATUS)"),
            ("CPU 0 5 6", "in.mce:1:9: expected a term"),
            ("CPU 0 STATUS 1 $", "in.mce:1:16: unexpected character `$`"),
            ("CPU 0x100000000 STATUS 1", "in.mce:1:5: CPU 0x100000000 is too large: at most 4294967295"),
            ("CPU 0 BANK 0x100000000", "BANK 0x100000000 is too large"),
            ("CPU 0 RIP 0x100:0x5", "in.mce:1:11: RIP code segment 0x100 is too large: at most 0xff"),
            ("CPU 0 RIP 0x10:<0x5 {x}", "in.mce:1:21: expected `>`, found `{`"),
            ("CPU 0 RIP 0x10:<0x5> x", "expected `{`, found `x`"),
            ("CPU 0 RIP 0x10:<0x5> {x", "in.mce:1:22: a `{` symbol is not closed"),
            ("CPU 0 RIP 0x10:<0x5> {}", "in.mce:1:23: expected a symbol"),
            ("CPU 0 PROCESSOR 2 0x5", "in.mce:1:19: expected `:`, found number 0x5"),
            ("CPU 0: MACHINE CHECK 4", "in.mce:1:22: expected `EXCEPTION`, found number 4"),
            ("CPU 0: MACHINE CHECK EXCEPTION: 0 BANK 4: b200000000070f0f", "in.mce:1:43: `b200000000070f0f` is not a number: hex needs a 0x prefix (write 0xb200000000070f0f)"),
            ("CPU 0 STATUS VAL b2 EN", "in.mce:1:18: `b2` is not a number: hex needs a 0x prefix (write 0xb2)"),
            ("CPU 0 STATUS VAL beef", "in.mce:1:18: expected a term"),
            ("CPU 0: MACHINE CHECK EXCEPTION 0", "expected `:`, found number 0"),
            ("CPU 0: MACHINE CHECK EXCEPTION: 0 4", "expected `BANK`, found number 4"),
            ("CPU 0 STATUS 08", "`08` is not a number: a leading 0 means octal"),
            ("CPU 0 STATUS 1 :", "in.mce:1:16: expected a term"),
        ];
        for (text, want) in cases {
            let got = err(text);
            assert!(
                got.contains(want),
                "input {text:?}\n got: {got}\nwant: {want}"
            );
        }
    }

    #[test]
    fn the_tools_own_uncorrected_sample_fails_clearly() {
        // andikleen/mce-inject's test/uncorrected puts an MCGSTATUS flag in its STATUS list.
        let e = err("# this should just kill the process\nCPU 0 BANK 1\nSTATUS uncorrected EIPV\nADDR 0x1234\nRIP 0xdeadbabe\n");
        assert!(e.starts_with("in.mce:3:20: expected a term"), "{e}");
        assert!(
            e.ends_with(
                "found `EIPV` (EIPV is an MCGSTATUS flag, not a STATUS flag: write MCGSTATUS EIPV)"
            ),
            "{e}"
        );
        // Its other samples parse.
        let fatal = one("# WARNING\nCPU 0\nSTATUS fatal\nRIP 12343434\n\n");
        assert_eq!(
            (fatal.status, fatal.ip),
            (
                status::VAL | status::UC | status::EN | status::PCC,
                12343434
            )
        );
        let yellow = one("CPU 0 BANK 3\nMCGSTATUS TES_P\nSTATUS CORRECTED TES_YELLOW\n");
        assert_eq!(
            (yellow.mcgstatus, yellow.status),
            (1 << 11, status::VAL | status::EN | status::TES_YELLOW)
        );
    }

    #[test]
    fn a_pasted_kernel_panic_line_fails_clearly() {
        let e = err(
            "CPU 1: MACHINE CHECK EXCEPTION: 5 BANK 3: b200000000000f0f\nRIP 10:<ffffffff810175c5>",
        );
        assert_eq!(e, "in.mce:1:43: `b200000000000f0f` is not a number: hex needs a 0x prefix (write 0xb200000000000f0f)");
    }

    #[test]
    fn status_words_for_the_command_line() {
        assert_eq!(
            parse_status_words("0x9c00000000000813"),
            Ok(0x9c00000000000813)
        );
        assert_eq!(
            parse_status_words("VAL|UC|EN ADDRV 0x134"),
            Ok(status::VAL | status::UC | status::EN | status::ADDRV | 0x134)
        );
        assert_eq!(
            parse_status_words("corrected deferred"),
            Ok(status::VAL | status::EN | status::AMD_DEFERRED)
        );
        assert!(parse_status_words("VAL BOGUS")
            .unwrap_err()
            .contains("`BOGUS` is not a status flag"));
        assert!(parse_status_words("  ").unwrap_err().contains("empty"));
        assert!(parse_status_words("9c00")
            .unwrap_err()
            .contains("write 0x9c00"));
    }

    #[test]
    fn a_status_copied_from_a_kernel_log_is_not_read_as_decimal() {
        // `Bank 4: 9000000000000813`: hex in the kernel's log, a different status as decimal.
        assert_eq!(
            parse_status_words("9000000000000813").unwrap_err(),
            "`9000000000000813` is ambiguous: the kernel log prints a status as 16 hex digits \
             without 0x, and bare digits read as decimal here; write 0x9000000000000813 for the \
             kernel's hex (or 0x1ff973cafa832d if you meant decimal)"
        );
        assert_eq!(
            parse_status_words("0x9000000000000813"),
            Ok(0x9000000000000813)
        );
        // Shorter decimals keep the language's meaning.
        assert_eq!(parse_status_words("VAL 2067"), Ok(status::VAL | 2067));
    }

    #[test]
    fn a_huge_bad_token_is_quoted_as_an_excerpt() {
        let huge = "z".repeat(10_000_000);
        let e = parse_status_words(&huge).unwrap_err();
        assert!(e.len() < 1000, "{}", &e[..200]);
        assert!(e.contains("... (10000000 bytes)"), "{e}");
        let e = parse_number(&"9".repeat(1_000_000)).unwrap_err();
        assert!(e.len() < 200, "{}", &e[..200]);
        let e = err(&format!("CPU 0 BANK 4 STATUS {}", "f".repeat(1_000_000)));
        assert!(e.len() < 1000, "{}", &e[..1000]);
        assert!(e.contains("... (1000000 bytes)"), "{e}");
    }

    #[test]
    fn print_is_canonical() {
        let r = one(
            "CPU 1 BANK 4 MISC 0xd01a STATUS 0x9c7d410092080813 ADDR 0x12345000 RIP 0x10:0x99 HOLD",
        );
        insta::assert_snapshot!(print(&r), @r"
        CPU 1 BANK 4
        ADDR 0x12345000
        MISC 0xd01a
        STATUS 0x9c7d410092080813
        RIP 0x10:0x99
        HOLD
        ");
    }

    #[test]
    fn print_all_separates_records_with_one_blank_line() {
        let v = parse("CPU 0 STATUS 1 CPU 1 STATUS 2", "t").unwrap();
        assert_eq!(
            print_all(&v),
            "CPU 0 BANK 0\nSTATUS 0x1\n\nCPU 1 BANK 0\nSTATUS 0x2\n"
        );
        assert_eq!(parse(&print_all(&v), "t").unwrap(), v);
    }

    fn random_record(rng: &mut impl Rng) -> MceRecord {
        // Half the fields zero, so the "print only what is set" paths are exercised too.
        macro_rules! maybe {
            () => {{
                let v = rng.random();
                if rng.random_bool(0.5) {
                    v
                } else {
                    Default::default()
                }
            }};
        }
        MceRecord {
            cpu: maybe!(),
            bank: maybe!(),
            status: maybe!(),
            mcgstatus: maybe!(),
            mcgcap: maybe!(),
            addr: maybe!(),
            misc: maybe!(),
            synd: maybe!(),
            ipid: maybe!(),
            tsc: maybe!(),
            time: maybe!(),
            socketid: maybe!(),
            apicid: maybe!(),
            cpuvendor: maybe!(),
            cpuid: maybe!(),
            cs: maybe!(),
            ip: maybe!(),
            broadcast: [
                Broadcast::None,
                Broadcast::Off,
                Broadcast::Irq,
                Broadcast::Nmi,
            ][rng.random_range(0..4)],
            delivery: [Delivery::Auto, Delivery::Poll, Delivery::Exception][rng.random_range(0..3)],
            context: [Context::Random, Context::Process, Context::Irq][rng.random_range(0..3)],
            hold: rng.random(),
        }
    }

    #[test]
    fn parse_of_print_is_identity_for_random_records() {
        let mut rng = rand::rng();
        for _ in 0..5000 {
            let records: Vec<MceRecord> = (0..rng.random_range(1..4))
                .map(|_| random_record(&mut rng))
                .collect();
            let text = print_all(&records);
            let back = parse(&text, "t").unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(back, records, "{text}");
        }
    }
}
