import type { NotebookPanel } from '@jupyterlab/notebook';
import { Token } from '@lumino/coreutils';
import type { ISignal } from '@lumino/signaling';

import type { NotebookBridge } from './bridge';

/** One bridge per open notebook document (all views of a notebook share it). */
export interface IBridgeManager {
  /** The bridge of a notebook panel, or null if the panel is gone. */
  bridgeFor(panel: NotebookPanel): NotebookBridge | null;
  /** The live bridges. */
  readonly bridges: ReadonlyArray<NotebookBridge>;
  /** A bridge was created for a newly opened notebook. */
  readonly bridgeAdded: ISignal<IBridgeManager, NotebookBridge>;
}

export const IBridgeManager = new Token<IBridgeManager>(
  'nbagent-labextension:IBridgeManager',
  'Connects each open notebook to the nbagent comms of its kernel.'
);
