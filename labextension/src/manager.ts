import type { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ISignal, Signal } from '@lumino/signaling';

import { NotebookBridge } from './bridge';
import type { IBridgeManager } from './tokens';

type Context = NotebookPanel['context'];

/**
 * Keeps one NotebookBridge per open notebook document. Several views of one notebook
 * share a document context, a kernel connection, and so a bridge and a client id.
 * A bridge disposes itself when its notebook's session goes away.
 */
export class BridgeManager implements IBridgeManager {
  constructor(tracker: INotebookTracker) {
    tracker.forEach(panel => this._track(panel));
    tracker.widgetAdded.connect((_sender, panel) => this._track(panel));
  }

  get bridges(): ReadonlyArray<NotebookBridge> {
    return [...this._bridges.values()];
  }

  get bridgeAdded(): ISignal<IBridgeManager, NotebookBridge> {
    return this._bridgeAdded;
  }

  bridgeFor(panel: NotebookPanel): NotebookBridge | null {
    return this._bridges.get(panel.context) ?? null;
  }

  private _track(panel: NotebookPanel): void {
    const context = panel.context;
    if (this._bridges.has(context) || context.isDisposed) {
      return;
    }
    const bridge = new NotebookBridge(context);
    this._bridges.set(context, bridge);
    bridge.disposed.connect(() => this._bridges.delete(context));
    this._bridgeAdded.emit(bridge);
  }

  private _bridges = new Map<Context, NotebookBridge>();
  private _bridgeAdded = new Signal<IBridgeManager, NotebookBridge>(this);
}
