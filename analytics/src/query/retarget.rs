//! Pointing a saved query at another table, for templates.
//!
//! A template keeps a bound block's query with the marker `{{source}}` where the query read
//! its source table ([`mark_source`]); a canvas made from the template with a chosen source
//! gets a saved query whose text names that source's table instead ([`fill_source`]). The
//! text is changed only at the table's own spans (found with sqlparser's tokenizer), so
//! comments, literals and layout stay as written.

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, Tokenizer};

use crate::source::database::DbEngine;

/// Where a template query reads the table chosen when a canvas is made from it.
pub const SOURCE_MARKER: &str = "{{source}}";

/// `sql` with each read of the table `table` (a name right after `FROM` or `JOIN`, not
/// schema-qualified; unquoted names match without regard to ASCII case, quoted ones
/// exactly) replaced by [`SOURCE_MARKER`], and how many were replaced. A text the tokenizer
/// cannot read is returned unchanged (0).
pub fn mark_source(sql: &str, table: &str) -> (String, usize) {
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql)
        .with_unescape(false)
        .tokenize_with_location()
    else {
        return (sql.to_string(), 0);
    };
    let significant: Vec<_> = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect();
    let mut spans = Vec::new();
    for (i, t) in significant.iter().enumerate() {
        let Token::Word(word) = &t.token else {
            continue;
        };
        let named = match word.quote_style {
            None => word.value.eq_ignore_ascii_case(table),
            Some('"' | '`') => word.value == table,
            Some(_) => false,
        };
        let after_from = i > 0
            && matches!(&significant[i - 1].token,
                Token::Word(w) if matches!(w.keyword, Keyword::FROM | Keyword::JOIN));
        let qualified = matches!(
            significant.get(i + 1).map(|t| &t.token),
            Some(Token::Period)
        );
        if named && after_from && !qualified {
            spans.push((t.span.start, t.span.end));
        }
    }
    let offsets = LineOffsets::new(sql);
    let mut out = String::with_capacity(sql.len());
    let mut at = 0;
    for (start, end) in &spans {
        let (Some(start), Some(end)) = (offsets.byte(sql, *start), offsets.byte(sql, *end)) else {
            return (sql.to_string(), 0);
        };
        if start < at || end < start {
            return (sql.to_string(), 0);
        }
        out.push_str(&sql[at..start]);
        out.push_str(SOURCE_MARKER);
        at = end;
    }
    out.push_str(&sql[at..]);
    (out, spans.len())
}

/// A template query's text with [`SOURCE_MARKER`] replaced by `table`, quoted for where it
/// runs: double quotes for DataFusion and PostgreSQL, backticks for MySQL/MariaDB (a quote
/// inside the name is doubled).
pub fn fill_source(sql: &str, table: &str, engine: Option<DbEngine>) -> String {
    let quoted = match engine {
        Some(DbEngine::Mysql) => format!("`{}`", table.replace('`', "``")),
        _ => format!("\"{}\"", table.replace('"', "\"\"")),
    };
    sql.replace(SOURCE_MARKER, &quoted)
}

/// Byte offsets of line starts, to turn the tokenizer's (line, column) into byte indexes.
struct LineOffsets(Vec<usize>);

impl LineOffsets {
    fn new(text: &str) -> LineOffsets {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineOffsets(starts)
    }

    /// The byte index of a 1-based line and 1-based character column.
    fn byte(&self, text: &str, at: Location) -> Option<usize> {
        let line = usize::try_from(at.line).ok()?.checked_sub(1)?;
        let column = usize::try_from(at.column).ok()?.checked_sub(1)?;
        let start = *self.0.get(line)?;
        let rest = &text[start..];
        match rest.char_indices().nth(column) {
            Some((i, _)) => Some(start + i),
            // the end of the text
            None if rest.chars().count() == column => Some(text.len()),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_the_table_after_from_and_join_only() {
        let sql = "SELECT sales.region, sum(x) -- from sales\nFROM Sales s JOIN \"sales\" t ON 1=1 \
                   WHERE note = 'FROM sales' AND y > {{min}}";
        let (marked, n) = mark_source(sql, "sales");
        assert_eq!(n, 2, "{marked}");
        assert_eq!(
            marked,
            "SELECT sales.region, sum(x) -- from sales\nFROM {{source}} s JOIN {{source}} t ON 1=1 \
             WHERE note = 'FROM sales' AND y > {{min}}"
        );
    }

    #[test]
    fn leaves_other_tables_schema_qualified_names_and_quoted_case() {
        let (same, n) = mark_source("SELECT * FROM public.sales, \"Sales\" JOIN orders", "sales");
        assert_eq!(n, 0);
        assert_eq!(same, "SELECT * FROM public.sales, \"Sales\" JOIN orders");
    }

    #[test]
    fn multibyte_text_before_the_table_keeps_its_bytes() {
        let (marked, n) = mark_source("SELECT 'é→' AS a\n  FROM   t2", "t2");
        assert_eq!(n, 1);
        assert_eq!(marked, "SELECT 'é→' AS a\n  FROM   {{source}}");
    }

    #[test]
    fn fills_with_a_quoted_name_for_each_engine() {
        let sql = "SELECT * FROM {{source}} WHERE a = {{a}}";
        assert_eq!(
            fill_source(sql, "my \"t\"", None),
            "SELECT * FROM \"my \"\"t\"\"\" WHERE a = {{a}}"
        );
        assert_eq!(
            fill_source(sql, "o`k", Some(DbEngine::Mysql)),
            "SELECT * FROM `o``k` WHERE a = {{a}}"
        );
    }
}
