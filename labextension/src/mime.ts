/**
 * Renderer for `application/vnd.nbagent.turn+json`, the output of a `%%agent` cell.
 *
 * The kernel sends the same turn as text/markdown and text/plain too, for frontends
 * without this extension; rank 0 (lower is preferred) makes JupyterLab pick this one.
 * It is `safe`: all model text is sanitized, so it is used in untrusted notebooks too.
 */

import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

import type { TurnBlock } from './protocol';
import { el, ImageData, MarkdownRender, markdownRenderer, turnBlockNode } from './render';

export const MIME_TYPE = 'application/vnd.nbagent.turn+json';

/** A turn as rendered: the schema's TurnOutput (protocol.schema.json), read leniently. */
export type TurnData = { v: number; blocks: TurnBlock[]; footer?: string };

const KINDS = new Set<string>(['thinking', 'text', 'tool', 'notice', 'error']);

function str(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

/** Read the payload leniently: a malformed block is skipped, not an error. */
export function parseTurn(data: unknown): TurnData {
  const blocks: TurnBlock[] = [];
  const raw = typeof data === 'object' && data !== null ? (data as { [key: string]: unknown }) : {};
  if (Array.isArray(raw.blocks)) {
    for (const item of raw.blocks) {
      if (typeof item !== 'object' || item === null) {
        continue;
      }
      const b = item as { [key: string]: unknown };
      const images = Array.isArray(b.images)
        ? b.images.filter(
            (i): i is ImageData =>
              typeof i === 'object' &&
              i !== null &&
              typeof i.media_type === 'string' &&
              typeof i.data === 'string'
          )
        : [];
      blocks.push({
        // An unknown kind (a newer kernel's) is shown as text.
        kind: KINDS.has(str(b.kind)) ? (b.kind as TurnBlock['kind']) : 'text',
        text: str(b.text),
        name: str(b.name),
        summary: str(b.summary),
        is_error: b.is_error === true,
        running: b.running === true,
        images
      });
    }
  }
  return { v: typeof raw.v === 'number' ? raw.v : 1, blocks, footer: str(raw.footer) };
}

export class TurnRenderer extends Widget implements IRenderMime.IRenderer {
  constructor(private readonly _options: IRenderMime.IRendererOptions) {
    super();
    this.addClass('jp-nbagent-turn-output');
    this._render = markdownRenderer(_options);
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const turn = parseTurn(model.data[MIME_TYPE]);
    // Build off-DOM and swap once, so streamed updates of the output do not flicker.
    const body = el('div', 'jp-nbagent-turn-body');
    const pending: Promise<void>[] = [];
    for (const block of turn.blocks) {
      const { node, rendered } = turnBlockNode(block, this._render);
      body.appendChild(node);
      pending.push(rendered);
    }
    if (turn.footer) {
      body.appendChild(el('div', 'jp-nbagent-turn-footer', turn.footer));
    }
    await Promise.all(pending);
    this.node.replaceChildren(body);
    if (this.isAttached) {
      void this._options.latexTypesetter?.typeset(this.node);
    }
  }

  protected onAfterAttach(): void {
    void this._options.latexTypesetter?.typeset(this.node);
  }

  private _render: MarkdownRender;
}

const extension: IRenderMime.IExtension = {
  id: 'nbagent-labextension:turn-renderer',
  description: 'Renders the output of %%agent cells.',
  rendererFactory: {
    safe: true,
    mimeTypes: [MIME_TYPE],
    defaultRank: 0,
    createRenderer: options => new TurnRenderer(options)
  },
  rank: 0,
  dataType: 'json'
};

export default extension;
