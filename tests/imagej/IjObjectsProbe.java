// Opens label images and ROI sets with ImageJ 1.x, as a user's Fiji would, and prints
// what ImageJ sees, tab-separated, after a first line with ImageJ's version:
//   IMAGE  path  width height channels slices frames  bit depth  largest value  unit
//     (a label image through IJ.openImage: File > Open without Bio-Formats)
//   ROI  zip  name  type  x y width height  position  pixels in the ROI's mask
//     (each entry of a ROI-set zip through RoiDecoder: what the ROI Manager opens)
// Used by tests/contracts/test_instance_labels_fiji.py; runs headless:
//   java -Djava.awt.headless=true -cp /usr/share/java/ij.jar IjObjectsProbe.java FILE...
import ij.IJ;
import ij.ImagePlus;
import ij.gui.Roi;
import ij.io.RoiDecoder;
import ij.process.ImageProcessor;
import ij.process.StackStatistics;
import java.awt.Rectangle;
import java.io.ByteArrayOutputStream;
import java.io.FileInputStream;
import java.util.zip.ZipEntry;
import java.util.zip.ZipInputStream;

public class IjObjectsProbe {
    public static void main(String[] args) throws Exception {
        System.out.println("IMAGEJ " + IJ.getFullVersion());
        for (String path : args) {
            if (path.endsWith(".zip")) {
                rois(path);
            } else {
                image(path);
            }
        }
    }

    static void image(String path) {
        ImagePlus imp = IJ.openImage(path);
        if (imp == null) {
            System.out.println("FAILED\t" + path);
            return;
        }
        int[] d = imp.getDimensions();
        double max = new StackStatistics(imp).max;
        System.out.println("IMAGE\t" + path + "\t" + d[0] + "\t" + d[1] + "\t" + d[2] + "\t"
            + d[3] + "\t" + d[4] + "\t" + imp.getBitDepth() + "\t" + (long) max + "\t"
            + imp.getCalibration().getUnit());
        imp.close();
    }

    static void rois(String path) throws Exception {
        try (ZipInputStream zip = new ZipInputStream(new FileInputStream(path))) {
            ZipEntry entry;
            while ((entry = zip.getNextEntry()) != null) {
                ByteArrayOutputStream out = new ByteArrayOutputStream();
                zip.transferTo(out);
                Roi roi = new RoiDecoder(out.toByteArray(), entry.getName()).getRoi();
                Rectangle b = roi.getBounds();
                ImageProcessor mask = roi.getMask();
                long pixels = (long) b.width * b.height;
                if (mask != null) {
                    pixels = 0;
                    for (int i = 0; i < mask.getPixelCount(); i++) {
                        pixels += mask.get(i) != 0 ? 1 : 0;
                    }
                }
                System.out.println("ROI\t" + path + "\t" + roi.getName() + "\t" + roi.getTypeAsString()
                    + "\t" + b.x + "\t" + b.y + "\t" + b.width + "\t" + b.height + "\t"
                    + roi.getPosition() + "\t" + pixels);
            }
        }
    }
}
