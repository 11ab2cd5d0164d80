// Slash-command completion of the prompt input, as pure functions of its text.

/** True when the input is a command name being typed (a "/" and no space yet). */
export function wantsCompletion(text) {
  return text.startsWith("/") && !/\s/.test(text);
}

/** The longest prefix every word starts with. */
export function commonPrefix(words) {
  if (!words.length) return "";
  let prefix = words[0];
  for (const word of words) while (!word.startsWith(prefix)) prefix = prefix.slice(0, -1);
  return prefix;
}

/** The input after Tab: the one completion and a space, or the completions' common prefix. */
export function tabComplete(text, completions) {
  if (completions.length === 1) return `${completions[0]} `;
  const prefix = commonPrefix(completions);
  return prefix.length > text.length ? prefix : text;
}
