import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { describe, expect, it } from 'vitest';
import { markdownCode, markdownText, terminalText, xmlText } from '../../src/report/escape-text.js';

const forged = 'y\n\x1b[32mFAKE: all checks passed\x1b[0m\r\u202e';

describe('escaping model text', () => {
  it('shows control characters, ANSI escapes and bidi overrides in a terminal as visible escapes on one line', () => {
    const shown = terminalText(forged);
    expect(shown).toBe('y\\n\\x1b[32mFAKE: all checks passed\\x1b[0m\\r\\u202e');
    expect(shown).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u202e]/);
    expect(terminalText('conv1/weight:0 Ünïcödé')).toBe('conv1/weight:0 Ünïcödé');
  });

  it('escapes Markdown and HTML syntax in text and fences code spans around backticks and pipes', () => {
    expect(markdownText('<img src=x> *a* | [b](c)')).toBe('&lt;img src=x&gt; \\*a\\* \\| \\[b\\]\\(c\\)');
    expect(markdownText(forged)).not.toContain('\n');
    expect(markdownCode('fc1')).toBe('`fc1`');
    expect(markdownCode('a`b|c')).toBe('``a`b\\|c``');
    expect(markdownCode('`x')).toBe('`` `x ``');
  });

  it('makes any string valid XML text that parses back to the same characters where XML allows them', () => {
    const name = 'a<b>&"\'\u0001\u001b\ud800z';
    const xml = `<t name="${xmlText(name)}">${xmlText(name)}</t>`;
    expect(XMLValidator.validate(xml)).toBe(true);
    const parsed = new XMLParser({ ignoreAttributes: false, processEntities: true }).parse(xml) as { t: { '#text': string; '@_name': string } };
    expect(parsed.t['@_name']).toBe('a<b>&"\'\ufffd\ufffd\ufffdz');
  });
});
