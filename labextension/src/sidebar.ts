/**
 * The chat sidebar: shows the ChatView of the current notebook. One view per open
 * notebook is kept (created when the notebook opens), so events from `%%agent` cells
 * are collected even while the sidebar is closed, and each notebook keeps its history.
 */

import type { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { LabIcon } from '@jupyterlab/ui-components';
import { Panel, Widget } from '@lumino/widgets';

import type { NotebookBridge } from './bridge';
import { ChatView } from './chat';
import type { MarkdownRender } from './render';
import { el } from './render';
import type { IBridgeManager } from './tokens';

const CHAT_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <path class="jp-icon3" fill="#616161" d="M4 3h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2zm3 6.5a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01z"/>
</svg>`;

export const chatIcon = new LabIcon({ name: 'nbagent:chat', svgstr: CHAT_SVG });

export class ChatSidebar extends Panel {
  constructor(
    private readonly _manager: IBridgeManager,
    private readonly _tracker: INotebookTracker,
    private readonly _render: MarkdownRender
  ) {
    super();
    this.id = 'jp-nbagent-sidebar';
    this.addClass('jp-nbagent-sidebar');
    this.title.icon = chatIcon;
    this.title.caption = 'nbagent chat';
    this._placeholder.node.appendChild(
      el('div', 'jp-nbagent-placeholder-text', 'Open a notebook to chat with nbagent about it.')
    );
    this._placeholder.addClass('jp-nbagent-placeholder');
    this.addWidget(this._placeholder);
    for (const bridge of _manager.bridges) {
      this._addView(bridge);
    }
    _manager.bridgeAdded.connect((_sender, bridge) => this._addView(bridge), this);
    _tracker.currentChanged.connect(this._showCurrent, this);
    this._showCurrent();
  }

  /** The chat of the current notebook, if any. */
  get currentView(): ChatView | null {
    return this._current;
  }

  protected onActivateRequest(): void {
    this._current?.focusInput();
  }

  private _addView(bridge: NotebookBridge): void {
    if (this._views.has(bridge)) {
      return;
    }
    const view = new ChatView(bridge, this._render);
    view.hide();
    this._views.set(bridge, view);
    this.addWidget(view);
    bridge.disposed.connect(() => {
      this._views.delete(bridge);
      if (this._current === view) {
        this._current = null;
      }
      view.dispose();
      this._showCurrent();
    });
    this._showCurrent();
  }

  private _showCurrent(): void {
    const panel: NotebookPanel | null = this._tracker.currentWidget;
    const bridge = panel ? this._manager.bridgeFor(panel) : null;
    const view = bridge ? (this._views.get(bridge) ?? null) : null;
    if (view !== this._current) {
      this._current?.hide();
      this._current = view;
      view?.show();
    }
    this._placeholder.setHidden(view !== null);
  }

  private _placeholder = new Widget();
  private _views = new Map<NotebookBridge, ChatView>();
  private _current: ChatView | null = null;
}
