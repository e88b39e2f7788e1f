// How many SMS segments a text costs: GSM-7 (160 / 153 per part) unless any character is
// outside the GSM 03.38 alphabet, then UCS-2 (70 / 67 UTF-16 units per part).

const GSM_BASIC =
  "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
  "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM_EXTENDED = "\f^{}\\[~]|€";
const basic = new Set(GSM_BASIC);
const extended = new Set(GSM_EXTENDED);

/** { encoding: "GSM-7"|"UCS-2", units, segments, perSegment, limit, culprit } for `text`. */
export function countSegments(text) {
  let septets = 0;
  let culprit = null;
  for (const ch of text) {
    if (basic.has(ch)) septets += 1;
    else if (extended.has(ch)) septets += 2;
    else {
      culprit = ch;
      break;
    }
  }
  if (culprit === null) {
    const single = 160;
    const multi = 153;
    const segments = septets <= single ? 1 : Math.ceil(septets / multi);
    return { encoding: "GSM-7", units: septets, segments, limit: segments === 1 ? single : multi * segments, culprit };
  }
  const units = text.length; // UTF-16 code units: an emoji counts two
  const single = 70;
  const multi = 67;
  const segments = units <= single ? 1 : Math.ceil(units / multi);
  return { encoding: "UCS-2", units, segments, limit: segments === 1 ? single : multi * segments, culprit };
}

/** The most characters one text may have (Twilio's limit; the API refuses more). */
export const MAX_CHARACTERS = 1600;

/**
 * Keep a counter element in step with a textarea: "42 / 160 · 1 segment · GSM-7". Past
 * MAX_CHARACTERS it says so first; the box does not cut a pasted text short without a word.
 */
export function bindCounter(textarea, counter) {
  const update = () => {
    const info = countSegments(textarea.value);
    const characters = [...textarea.value].length;
    const over = characters > MAX_CHARACTERS;
    const parts = [`${info.units} / ${info.limit}`, `${info.segments} segment${info.segments === 1 ? "" : "s"}`];
    if (over) parts.unshift(`Too long: ${characters} characters, at most ${MAX_CHARACTERS}`);
    if (info.encoding === "GSM-7") parts.push("GSM-7");
    else {
      const shown = info.culprit.trim() ? `“${info.culprit}”` : "a special character";
      parts.push(`Unicode (UCS-2) because of ${shown}`);
    }
    counter.textContent = parts.join(" · ");
    counter.classList.toggle("counter--ucs2", info.encoding === "UCS-2");
    counter.classList.toggle("counter--long", info.segments > 3 && !over);
    counter.classList.toggle("counter--over", over);
    counter.title =
      info.encoding === "GSM-7"
        ? "Plain SMS alphabet: 160 characters in one segment, 153 per segment when split."
        : "A character outside the SMS alphabet makes the whole text Unicode: 70 characters in one segment, 67 per segment when split.";
  };
  textarea.addEventListener("input", update);
  update();
  return update;
}
