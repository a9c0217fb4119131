/**
 * A tiny DOM builder. Text always goes in as textContent: data from the store is never parsed as markup.
 */

export interface IElementOptions {
  className?: string;
  text?: string;
  title?: string;
  attrs?: Record<string, string>;
  onClick?: (event: MouseEvent) => void;
}

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  options: IElementOptions = {},
  children: (Node | null | undefined)[] = []
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (options.className) {
    el.className = options.className;
  }
  if (options.text !== undefined) {
    el.textContent = options.text;
  }
  if (options.title !== undefined) {
    el.title = options.title;
  }
  for (const [name, value] of Object.entries(options.attrs || {})) {
    el.setAttribute(name, value);
  }
  if (options.onClick) {
    el.addEventListener('click', options.onClick as EventListener);
  }
  for (const child of children) {
    if (child) {
      el.appendChild(child);
    }
  }
  return el;
}

export function clear(el: Element): void {
  while (el.firstChild) {
    el.removeChild(el.firstChild);
  }
}
