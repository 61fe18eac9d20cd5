/**
 * DOM pieces shared by the chat sidebar and the `%%agent` output renderer: streamed
 * Markdown, collapsed thinking, tool lines with images. Model text is untrusted:
 * Markdown goes through JupyterLab's sanitizer, everything else is set as text.
 */

import { renderMarkdown } from '@jupyterlab/rendermime';
import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';

import type { ContentBlock, TextBlock, TurnBlock, TurnImage } from './protocol';

/** Renders Markdown source into a host element (replacing its content). */
export type MarkdownRender = (host: HTMLElement, source: string) => Promise<void>;

export type RenderSources = {
  sanitizer: IRenderMime.ISanitizer;
  resolver: IRenderMime.IResolver | null;
  linkHandler: IRenderMime.ILinkHandler | null;
  latexTypesetter: IRenderMime.ILatexTypesetter | null;
  markdownParser?: IRenderMime.IMarkdownParser | null;
};

/** A Markdown renderer on JupyterLab's pipeline; untrusted, so HTML is sanitized. */
export function markdownRenderer(sources: RenderSources): MarkdownRender {
  return (host, source) =>
    renderMarkdown({
      host,
      source,
      trusted: false,
      sanitizer: sources.sanitizer,
      resolver: sources.resolver,
      linkHandler: sources.linkHandler,
      latexTypesetter: sources.latexTypesetter,
      markdownParser: sources.markdownParser ?? null,
      shouldTypeset: host.isConnected
    });
}

/** Without a rendermime registry: the text as is. */
export const plainRenderer: MarkdownRender = async (host, source) => {
  host.textContent = source;
  host.classList.add('jp-nbagent-plain');
};

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className?: string,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

export function clip(text: string, limit: number): string {
  return text.length > limit
    ? `${text.slice(0, limit)}… (${text.length - limit} more characters)`
    : text;
}

/* -------------------------------- images -------------------------------- */

/** An image of a turn (the schema's TurnImage). */
export type ImageData = TurnImage;

const IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);

/** Image blocks of a tool result (`{"type":"image","source":{"type":"base64",...}}`). */
export function imagesFromBlocks(content: string | ContentBlock[]): ImageData[] {
  if (typeof content === 'string') {
    return [];
  }
  const images: ImageData[] = [];
  for (const block of content) {
    // Checked at run time too: the data comes from the kernel.
    const src = block.type === 'image' ? block.source : undefined;
    if (src?.type === 'base64' && src.media_type && src.data) {
      images.push({ media_type: src.media_type, data: src.data });
    }
  }
  return images;
}

export function textFromBlocks(content: string | ContentBlock[]): string {
  if (typeof content === 'string') {
    return content;
  }
  return content
    .filter((b): b is TextBlock => b.type === 'text' && typeof b.text === 'string')
    .map(b => b.text)
    .join('\n');
}

export function renderImages(images: ReadonlyArray<ImageData>): HTMLElement | null {
  const usable = images.filter(
    i => IMAGE_TYPES.has(i.media_type) && /^[A-Za-z0-9+/=\s]+$/.test(i.data)
  );
  if (usable.length === 0) {
    return null;
  }
  const box = el('div', 'jp-nbagent-images');
  for (const image of usable) {
    const img = el('img', 'jp-nbagent-image');
    img.src = `data:${image.media_type};base64,${image.data.replace(/\s/g, '')}`;
    img.alt = 'tool result image';
    box.appendChild(img);
  }
  return box;
}

/* ------------------------------ text blocks ------------------------------ */

/** A Markdown block that re-renders at most every 80 ms while text streams in. */
export class MarkdownBlock {
  readonly node = el('div', 'jp-nbagent-text jp-RenderedMarkdown jp-RenderedHTMLCommon');

  constructor(private readonly _render: MarkdownRender) {}

  get text(): string {
    return this._text;
  }

  append(delta: string): void {
    this._text += delta;
    if (this._timer === null) {
      this._timer = window.setTimeout(() => {
        this._timer = null;
        void this._renderNow();
      }, 80);
    }
  }

  /** Render now and stop waiting for more text. */
  flush(): Promise<void> {
    if (this._timer !== null) {
      window.clearTimeout(this._timer);
      this._timer = null;
    }
    return this._renderNow();
  }

  private async _renderNow(): Promise<void> {
    if (this._rendering) {
      this._dirty = true;
      return;
    }
    this._rendering = true;
    try {
      do {
        this._dirty = false;
        await this._render(this.node, this._text);
      } while (this._dirty);
    } catch (err) {
      console.warn('nbagent: markdown rendering failed', err);
      this.node.textContent = this._text;
    } finally {
      this._rendering = false;
    }
  }

  private _text = '';
  private _timer: number | null = null;
  private _rendering = false;
  private _dirty = false;
}

/** Collapsed reasoning. */
export class ThinkingBlock {
  readonly node = el('details', 'jp-nbagent-thinking');

  constructor(text = '') {
    this.node.appendChild(el('summary', 'jp-nbagent-thinking-summary', 'Thinking'));
    this.node.appendChild(this._body);
    this.append(text);
  }

  append(delta: string): void {
    this._body.textContent = (this._body.textContent ?? '') + delta;
  }

  private _body = el('div', 'jp-nbagent-thinking-body');
}

/** One tool call: name and one-line summary; details (input, result text, images) on expand. */
export class ToolLine {
  readonly node = el('div', 'jp-nbagent-tool');

  constructor(name: string) {
    const details = el('details', 'jp-nbagent-tool-details');
    const summary = el('summary', 'jp-nbagent-tool-head');
    summary.appendChild(el('span', 'jp-nbagent-tool-icon', '⚙'));
    summary.appendChild(el('span', 'jp-nbagent-tool-name', name));
    summary.appendChild(this._summary);
    details.appendChild(summary);
    details.appendChild(this._body);
    this.node.appendChild(details);
    this.setRunning(true);
  }

  /** The call ended without a result (interrupted, turn over). */
  cancel(label: string): void {
    if (!this._done) {
      this._done = true;
      this.setRunning(false);
      this._summary.textContent = label;
    }
  }

  setRunning(running: boolean): void {
    this.node.classList.toggle('jp-mod-running', running);
    if (running && !this._summary.textContent) {
      this._summary.textContent = 'running…';
    }
  }

  setInput(input: unknown): void {
    this._input.textContent = clip(JSON.stringify(input, null, 2) ?? '', 4000);
    if (!this._input.isConnected) {
      this._body.prepend(this._input);
    }
  }

  setResult(options: {
    summary: string;
    isError: boolean;
    detail?: string;
    images?: ReadonlyArray<ImageData>;
    elapsed?: number;
  }): void {
    this._done = true;
    this.setRunning(false);
    this.node.classList.toggle('jp-mod-error', options.isError);
    const elapsed = options.elapsed ? ` (${options.elapsed.toFixed(1)} s)` : '';
    this._summary.textContent =
      (options.summary || (options.isError ? 'failed' : 'done')) + elapsed;
    if (options.detail) {
      this._body.appendChild(el('pre', 'jp-nbagent-tool-output', clip(options.detail, 4000)));
    }
    const images = renderImages(options.images ?? []);
    if (images) {
      // Images are the point of e.g. a plot: show them without expanding.
      this.node.appendChild(images);
    }
  }

  private _done = false;
  private _summary = el('span', 'jp-nbagent-tool-summary');
  private _body = el('div', 'jp-nbagent-tool-body');
  private _input = el('pre', 'jp-nbagent-tool-input');
}

export function noticeLine(text: string, level: 'info' | 'warning' = 'info'): HTMLElement {
  return el('div', `jp-nbagent-notice jp-mod-${level}`, text);
}

export function errorLine(text: string): HTMLElement {
  return el('div', 'jp-nbagent-error', text);
}

/**
 * One block of a finished turn (a `%%agent` output, a turn of the sidebar's restored
 * history) as a node; `rendered` settles when its Markdown is drawn.
 */
export function turnBlockNode(
  block: TurnBlock,
  render: MarkdownRender
): { node: HTMLElement; rendered: Promise<void> } {
  const done = Promise.resolve();
  switch (block.kind) {
    case 'thinking':
      return { node: new ThinkingBlock(block.text).node, rendered: done };
    case 'tool': {
      const tool = new ToolLine(block.name || 'tool');
      if (!block.running) {
        tool.setResult({
          summary: block.summary ?? '',
          isError: block.is_error === true,
          images: block.images
        });
      }
      return { node: tool.node, rendered: done };
    }
    case 'notice':
      return { node: noticeLine(block.text ?? ''), rendered: done };
    case 'error':
      return { node: errorLine(block.text ?? ''), rendered: done };
    default: {
      const md = new MarkdownBlock(render);
      md.append(block.text ?? '');
      return { node: md.node, rendered: md.flush() };
    }
  }
}
